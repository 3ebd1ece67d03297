//! Asks the hub who it takes you to be.
//!
//! ```text
//! whoami https://localhost:50051 DIR ORG
//! ```
//! `DIR` is a certificate folder written by `telesub pki init` and `ORG` an organisation code
//! in it; with a province-issued certificate, use `Client::builder(..).identity_files(..)`.

use telesub_client::{Client, Error};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(endpoint), Some(dir), Some(org)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: whoami ENDPOINT TLS_DIR ORG   (e.g. whoami https://localhost:50051 ./dev-tls VNPT)");
        std::process::exit(2);
    };
    let client = Client::builder(endpoint).dev_folder(dir, &org)?.connect().await?;
    match client.who_am_i().await {
        Ok(me) => {
            let member = me.member.unwrap_or_default();
            println!("organisation:  {}", member.code);
            println!("name:          {}", member.display_name);
            println!("role:          {}", member.role().as_str_name());
            if !member.unit_code.is_empty() {
                println!("unit:          {}", member.unit_code);
            }
            println!("status:        {}", member.status().as_str_name());
            println!("certificate:   {}", me.certificate_fingerprint);
            println!("request id:    {}", me.request_id);
            Ok(())
        }
        Err(Error::Unauthenticated(r)) => Err(format!("the hub does not know {org}: {r}").into()),
        Err(err) => Err(err.into()),
    }
}
