//! Administrative units as data: the reference list on first start, and the 2025 merger
//! recorded through the API without losing where households were before.

use telesub_client::{Error, proto};
use telesub_tests::TestApp;

use crate::households::{header, household, push};

fn unit(
    code: &str,
    level: proto::UnitLevel,
    name: &str,
    parent: &str,
    from: &str,
    to: &str,
    successor: &str,
) -> proto::AdministrativeUnit {
    proto::AdministrativeUnit {
        code: code.into(),
        level: level.into(),
        name: name.into(),
        parent_code: parent.into(),
        valid_from: from.into(),
        valid_to: to.into(),
        successor_code: successor.into(),
    }
}

fn fields(err: &Error) -> Vec<&str> {
    err.violations().iter().map(|v| v.field.as_str()).collect()
}

use proto::UnitLevel::{Commune, District, Province};

#[tokio::test]
async fn the_reference_units_are_loaded_on_first_start() {
    let app = TestApp::spawn().await;
    let client = app.client("VNPT").await;
    let all =
        client.list_units(proto::ListUnitsRequest { as_of: "2025-03-01".into(), ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 63 + 8 + 71);
    let communes = client
        .list_units(proto::ListUnitsRequest { level: Commune.into(), parent_code: "660".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(communes.len(), 8);
    assert_eq!(communes[0].code, "24611");
    assert_eq!(communes[0].name, "Phường Nghĩa Đức");
    assert_eq!(communes[0].valid_from, "");
}

/// From 1 July 2025 Đắk Nông is part of Lâm Đồng (68) and districts are gone: 24611 keeps its
/// code as a new ward under the province; 24612 ends and is succeeded by 24611.
#[tokio::test]
async fn the_merger_is_recorded_and_earlier_addresses_keep_their_meaning() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    push(
        &labour,
        header("b1", proto::BatchKind::Delta, "2025-01", "2025-01-01"),
        vec![household("HH-1", "24611", 1), household("HH-2", "24612", 2)],
    )
    .await
    .unwrap();

    let ict = app.client("DOICT").await;
    let merger = vec![
        unit("67", Province, "Tỉnh Đắk Nông", "", "", "2025-07-01", "68"),
        unit("660", District, "Thành phố Gia Nghĩa", "67", "", "2025-07-01", ""),
        unit("24611", Commune, "Phường Bắc Gia Nghĩa", "68", "2025-07-01", "", ""),
        unit("24612", Commune, "Phường Nghĩa Thành", "660", "", "2025-07-01", "24611"),
    ];
    let recorded = ict.record_units(merger).await.unwrap();
    assert_eq!((recorded.added, recorded.changed), (1, 4), "one new version; three ended, one closed by it");

    let before = labour.get_household("HH-1", "2025-06-30").await.unwrap();
    assert_eq!((before.district_code.as_str(), before.province_code.as_str()), ("660", "67"));
    assert_eq!(before.commune_name, "Phường Nghĩa Đức");
    let after = labour.get_household("HH-1", "2025-07-01").await.unwrap();
    assert_eq!((after.district_code.as_str(), after.province_code.as_str()), ("", "68"));
    assert_eq!(after.commune_name, "Phường Bắc Gia Nghĩa");
    // HH-2's commune ended; its record keeps the old code and where it lay.
    let hh2 = labour.get_household("HH-2", "2025-08-01").await.unwrap();
    assert_eq!(hh2.data.unwrap().commune_code, "24612");

    // New records use the communes of their date.
    let err = push(
        &labour,
        header("b2", proto::BatchKind::Delta, "2025-08", "2025-08-01"),
        vec![household("HH-3", "24612", 3)],
    )
    .await
    .unwrap_err();
    assert_eq!(fields(&err), ["records[0] (HH-3).upsert.commune_code"]);
    assert!(err.violations()[0].description.contains("successor is 24611"), "{:?}", err.violations()[0]);
    push(&labour, header("b2", proto::BatchKind::Delta, "2025-08", "2025-08-01"), vec![household("HH-3", "24611", 3)])
        .await
        .unwrap();

    // The district's locality still reads what lay in its unit then, not what lies elsewhere now.
    let locality = app.client("GIANGHIA").await;
    assert!(locality.get_household("HH-1", "2025-06-30").await.is_ok());
    assert!(matches!(locality.get_household("HH-1", "2025-08-01").await.unwrap_err(), Error::NotFound(_)));

    let now = ict
        .list_units(proto::ListUnitsRequest {
            as_of: "2025-08-01".into(),
            parent_code: "68".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(now.iter().map(|u| u.code.as_str()).collect::<Vec<_>>(), ["24611"]);
}

#[tokio::test]
async fn bad_unit_changes_are_refused_whole() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let err = ict
        .record_units(vec![
            unit("99901", Commune, "Xã Mới", "999", "2025-07-01", "", ""),
            unit("660", Commune, "Thành phố Gia Nghĩa", "67", "", "", ""),
            unit("24611", Commune, "Phường Nghĩa Đức", "661", "", "", ""),
            unit("24613", Commune, "Xã Mới 2", "", "", "", ""),
            unit("123", Province, "Tỉnh", "", "2025-07-01", "2025-01-01", "77"),
        ])
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "units[1].code",
            "units[1].level",
            "units[2].parent_code",
            "units[3].valid_from",
            "units[4].code",
            "units[4].valid_to",
        ]
    );
    let err = ict
        .record_units(vec![
            unit("99901", Commune, "Xã Mới", "999", "2025-07-01", "", ""),
            unit("99902", Commune, "Xã Khác", "68", "2025-07-01", "2025-09-01", "99999"),
        ])
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["units[0].parent_code", "units[1].successor_code"]);
    let units = ict.list_units(proto::ListUnitsRequest::default()).await.unwrap();
    assert!(units.iter().all(|u| !u.code.starts_with("999")), "nothing was recorded");
    let err = app.client("DOLISA").await.record_units(vec![]).await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied(_)));
}

/// Two unit changes recorded at the same moment (two of ICT's staff) give what they would one
/// after the other: the same new commune twice is one commune; two new versions of a commune
/// never both stay open. On PostgreSQL the units' table is held from outside until both wait
/// at their writes, so that both have checked against the units before either is stored.
#[tokio::test]
async fn unit_changes_recorded_at_the_same_moment_give_what_they_would_one_after_the_other() {
    let app = TestApp::spawn().await;
    let (one, other) = (app.client("DOICT").await, app.client("DOICT").await);
    let race = |a: Vec<proto::AdministrativeUnit>, b: Vec<proto::AdministrativeUnit>| {
        let (one, other, db) = (&one, &other, &app.db);
        async move {
            let hold = db.hold_writes("admin_units").await;
            let released = async {
                if let Some(hold) = hold {
                    hold.release_when_waiting(2).await;
                }
            };
            let (x, y, ()) = tokio::join!(one.record_units(a), other.record_units(b), released);
            (x, y)
        }
    };
    let new = || vec![unit("99901", Commune, "Xã Mới", "660", "2026-01-01", "", "")];
    let (x, y) = race(new(), new()).await;
    x.unwrap();
    y.unwrap();
    let listed = one.list_units(proto::ListUnitsRequest { parent_code: "660".into(), ..Default::default() }).await;
    assert_eq!(listed.unwrap().iter().filter(|u| u.code == "99901").count(), 1, "one commune, one version");

    let renamed = |name: &str, from: &str| vec![unit("24611", Commune, name, "660", from, "", "")];
    let (x, y) = race(renamed("Phường Một", "2026-03-01"), renamed("Phường Hai", "2026-04-01")).await;
    match (&x, &y) {
        (Ok(_), Ok(_)) => {}
        // Recorded second, the earlier date no longer follows the latest version.
        (Err(e), Ok(_)) => assert_eq!(fields(e), ["units[0].valid_from"], "{e}"),
        (x, y) => panic!("the later version is recorded either way: {x:?} {y:?}"),
    }
    for day in ["2026-02-15", "2026-03-15", "2026-04-15"] {
        let at = one
            .list_units(proto::ListUnitsRequest { as_of: day.into(), parent_code: "660".into(), ..Default::default() })
            .await
            .unwrap();
        let versions: Vec<_> = at.iter().filter(|u| u.code == "24611").map(|u| u.name.as_str()).collect();
        assert_eq!(versions.len(), 1, "one version of 24611 on {day}: {versions:?}");
    }
}
