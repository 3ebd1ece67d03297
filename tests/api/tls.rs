//! Mutual TLS: only clients with a valid, unrevoked certificate from the hub's CA get as far
//! as a gRPC call. Refusals happen at the handshake, so they leave no audit record.

use telesub_client::Client;
use telesub_server::pki::{DevCa, Validity};
use telesub_tests::{TestApp, read};
use time::{Duration, OffsetDateTime};

/// Asserts the hub refused the connection before any call reached it: the client got an
/// error, and the audit trail gained no record.
async fn assert_refused_at_handshake(app: &TestApp, result: Result<Client, telesub_client::Error>) {
    let before = app.audit().await.len();
    let outcome = match result {
        Err(e) => Err(e),
        Ok(client) => client.who_am_i().await.map(|_| ()),
    };
    let err = outcome.expect_err("the hub accepted a client it must refuse");
    // Every answer from the hub carries a request id; a failed handshake has none.
    assert_eq!(err.request_id(), None, "the call reached the hub: {err:?}");
    // A valid member's call goes through and is the only new record.
    app.client("DOICT").await.who_am_i().await.expect("a valid member still gets in");
    assert_eq!(app.audit().await.len(), before + 1, "a refused handshake must not reach the hub's calls");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let app = TestApp::spawn().await;
    assert_refused_at_handshake(&app, app.anonymous().connect().await).await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let app = TestApp::spawn().await;
    let rogue = DevCa::generate("rogue CA").unwrap();
    // The rogue certificate even names a real member.
    let issued = rogue.client_certificate("DOICT", Validity::days(30)).unwrap();
    let result = app.anonymous().identity_pem(issued.cert_pem, issued.key_pem).connect().await;
    assert_refused_at_handshake(&app, result).await;
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let app = TestApp::spawn().await;
    let now = OffsetDateTime::now_utc();
    let expired = Validity { not_before: now - Duration::days(400), not_after: now - Duration::days(1) };
    let result = app.client_with_new_certificate("DOICT", expired).await;
    assert_refused_at_handshake(&app, result).await;
}

#[tokio::test]
async fn a_certificate_not_yet_valid_is_refused() {
    let app = TestApp::spawn().await;
    let now = OffsetDateTime::now_utc();
    let future = Validity { not_before: now + Duration::days(1), not_after: now + Duration::days(30) };
    let result = app.client_with_new_certificate("DOICT", future).await;
    assert_refused_at_handshake(&app, result).await;
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_after_reload() {
    let app = TestApp::spawn().await;
    app.client("VNPT").await.who_am_i().await.expect("VNPT gets in before revocation");

    telesub_server::pki::revoke(app.tls_dir.path(), &["VNPT".to_owned()]).unwrap();
    app.tls.reload().expect("reload TLS with the new CRL");

    assert_refused_at_handshake(&app, app.builder("VNPT").connect().await).await;
    // Revocation is per certificate: a new certificate for the same member gets in.
    let fresh = app.client_with_new_certificate("VNPT", Validity::days(30)).await.expect("connect");
    assert_eq!(fresh.who_am_i().await.unwrap().member.unwrap().code, "VNPT");
}

#[tokio::test]
async fn a_hub_started_with_a_crl_refuses_revoked_certificates() {
    let tls_dir = tempfile::tempdir().unwrap();
    telesub_server::pki::init(tls_dir.path(), &["DOICT:ICT".parse().unwrap(), "VNPT:OPERATOR".parse().unwrap()])
        .unwrap();
    let crl = telesub_server::pki::revoke(tls_dir.path(), &["VNPT".to_owned()]).unwrap();
    let app = TestApp::spawn_with(|s| {
        s.tls.crl_files = vec![crl.clone()];
        s.tls.client_ca_file = Some(tls_dir.path().join("ca.crt"));
        s.tls.cert_file = Some(tls_dir.path().join("server.crt"));
        s.tls.key_file = Some(tls_dir.path().join("server.key"));
    })
    .await;
    let dir = telesub_server::pki::PkiDir::new(tls_dir.path());
    let vnpt = app
        .anonymous()
        .ca_pem(read(dir.ca_cert()))
        .identity_pem(read(dir.client_cert("VNPT")), read(dir.client_key("VNPT")));
    let result = vnpt.clone().connect().await;
    let outcome = match result {
        Err(e) => Err(e),
        Ok(c) => c.who_am_i().await.map(|_| ()),
    };
    // With TLS 1.3 the refusal reaches the call as the hub's alert or, when the call was
    // already under way, as a closed connection; the SDK's own handshake hears the alert.
    match outcome {
        Err(telesub_client::Error::CertificateRefused { alert }) => assert!(alert.contains("Revoked"), "{alert}"),
        Err(telesub_client::Error::Unavailable(r)) => assert!(r.request_id.is_none(), "{r}"),
        other => panic!("a certificate on the CRL was accepted: {other:?}"),
    }
    for _ in 0..10 {
        match vnpt.check_certificate().await {
            Err(telesub_client::Error::CertificateRefused { alert }) => assert_eq!(alert, "CertificateRevoked"),
            other => panic!("the check did not hear the hub's alert: {other:?}"),
        }
    }
    let doict = app
        .anonymous()
        .ca_pem(read(dir.ca_cert()))
        .identity_pem(read(dir.client_cert("DOICT")), read(dir.client_key("DOICT")));
    doict.check_certificate().await.expect("an accepted certificate checks out");
    let me = doict.connect().await.unwrap().who_am_i().await.unwrap();
    assert_eq!(me.member.unwrap().code, "DOICT");
}

#[tokio::test]
async fn the_hub_presents_a_certificate_the_client_checks() {
    let app = TestApp::spawn().await;
    // A client that trusts another CA refuses the hub.
    let other = DevCa::generate("other CA").unwrap();
    let dir = app.dir();
    let result = Client::builder(app.endpoint())
        .ca_pem(other.cert_pem().to_owned())
        .identity_pem(read(dir.client_cert("DOICT")), read(dir.client_key("DOICT")))
        .retry(telesub_client::RetryPolicy::none())
        .connect()
        .await;
    assert!(matches!(result, Err(telesub_client::Error::Connect { .. })), "{result:?}");
}
