//! `eligibility`: decisions on a household's support, and decisions given earlier.

use clap::{Args, Subcommand};
use telesub_client::{Client, proto};

use crate::{Failure, output::OutputArgs, show};

#[derive(Subcommand)]
pub(crate) enum EligibilityCommand {
    /// Whether a household is entitled to support on a date, and why not when it is not.
    Check {
        #[command(flatten)]
        key: CheckKey,
        /// YYYY-MM-DD; today when left out.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A decision given earlier, by its id.
    Decision {
        /// The id the decision was given with.
        id: String,
        #[command(flatten)]
        output: OutputArgs,
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
        EligibilityCommand::Check { key, as_of, output } => {
            use proto::check_eligibility_request::Key;
            let key = match (key.citizen_id, key.household, key.certificate) {
                (Some(id), _, _) => Key::CitizenId(id),
                (None, Some(code), _) => Key::HouseholdCode(code),
                (None, None, Some(number)) => Key::CertificateNumber(number),
                (None, None, None) => unreachable!("clap requires one of the three"),
            };
            output.one(&client.check_eligibility(key, as_of.as_deref().unwrap_or("")).await?, show::decision)?;
        }
        EligibilityCommand::Decision { id, output } => output.one(&client.get_decision(&id).await?, show::decision)?,
    }
    Ok(())
}
