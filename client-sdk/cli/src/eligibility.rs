//! `eligibility`: decisions on a household's support, and decisions given earlier.

use clap::{Args, Subcommand};
use telesub_client::{Client, proto};

use crate::{Failure, show};

#[derive(Subcommand)]
pub(crate) enum EligibilityCommand {
    /// Whether a household is entitled to support on a date, and why not when it is not.
    Check {
        #[command(flatten)]
        key: CheckKey,
        /// YYYY-MM-DD; today when left out.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
    },
    /// A decision given earlier, by its id.
    Decision {
        /// The id the decision was given with.
        id: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct CheckKey {
    /// A member's 12-digit citizen ID (CCCD).
    #[arg(value_name = "CITIZEN_ID")]
    citizen_id: Option<String>,
    /// The household code instead.
    #[arg(long, value_name = "CODE")]
    household: Option<String>,
    /// The poor / near-poor household certificate number instead, as printed.
    #[arg(long, value_name = "NUMBER")]
    certificate: Option<String>,
}

pub(crate) async fn eligibility(client: &Client, command: EligibilityCommand) -> Result<(), Failure> {
    match command {
        EligibilityCommand::Check { key, as_of } => {
            use proto::check_eligibility_request::Key;
            let key = match (key.citizen_id, key.household, key.certificate) {
                (Some(id), _, _) => Key::CitizenId(id),
                (None, Some(code), _) => Key::HouseholdCode(code),
                (None, None, Some(number)) => Key::CertificateNumber(number),
                (None, None, None) => unreachable!("clap requires one of the three"),
            };
            show::decision(&client.check_eligibility(key, as_of.as_deref().unwrap_or("")).await?);
        }
        EligibilityCommand::Decision { id } => show::decision(&client.get_decision(&id).await?),
    }
    Ok(())
}
