//! `policy`: the programme's rules, version by version.

use clap::Subcommand;
use telesub_client::{Client, proto};

use crate::{Failure, output::OutputArgs, show};

#[derive(Subcommand)]
pub(crate) enum PolicyCommand {
    /// The version in force on a date.
    Show {
        /// YYYY-MM-DD; today when left out.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Every version, oldest first, withdrawn ones too.
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Withdraws a version that has not yet taken effect (ICT).
    Withdraw {
        version: i64,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
}

pub(crate) async fn policy(client: &Client, command: PolicyCommand) -> Result<(), Failure> {
    match command {
        PolicyCommand::Show { as_of, output } => {
            output.one(&client.get_policy(as_of.as_deref().unwrap_or("")).await?, show::policy)?;
        }
        PolicyCommand::List { output } => {
            let response = proto::ListPolicyVersionsResponse { versions: client.list_policy_versions().await? };
            output.list(&response, &response.versions, || show::policies(&response.versions))?;
        }
        PolicyCommand::Withdraw { version, reason } => {
            let withdrawn = client.withdraw_policy_version(version, &reason).await?;
            outln!("version {} from {} withdrawn: {reason}", withdrawn.version, withdrawn.valid_from);
        }
    }
    Ok(())
}
