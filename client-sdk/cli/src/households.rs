//! `households` and `batches`: the register, read and pushed to.

use clap::{Args, Subcommand, ValueEnum};
use telesub_client::{Client, proto};

use crate::{Connection, Failure, connect, output::OutputArgs, push, show};

#[derive(Subcommand)]
pub(crate) enum HouseholdCommand {
    /// Pushes a CSV file of household records as one batch, applied whole or not at all.
    Push(push::PushArgs),
    /// A household as it was on a date.
    Get {
        /// The household code.
        code: String,
        /// YYYY-MM-DD; today when left out.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Every state a household has been in, oldest first.
    History {
        /// The household code.
        code: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Households by a member's citizen ID or by certificate number.
    Find {
        #[command(flatten)]
        key: FindKey,
        /// YYYY-MM-DD; today when left out.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct FindKey {
    /// A member's 12-digit citizen ID (CCCD).
    #[arg(long, value_name = "ID")]
    citizen_id: Option<String>,
    /// The poor / near-poor household certificate number, as printed.
    #[arg(long, value_name = "NUMBER")]
    certificate: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum BatchCommand {
    /// The receipt of a batch.
    Get {
        /// The batch id given when it was pushed.
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Receipts, newest first.
    List {
        /// How many to show at most.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// A batch's kind, as typed on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    /// Changes to some households.
    Delta,
    /// The complete list of a review: households missing from it are removed.
    Snapshot,
}

impl From<Kind> for proto::BatchKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Delta => proto::BatchKind::Delta,
            Kind::Snapshot => proto::BatchKind::Snapshot,
        }
    }
}

pub(crate) async fn households(connection: &Connection, command: HouseholdCommand) -> Result<(), Failure> {
    match command {
        HouseholdCommand::Push(args) => return push::run(connection, args).await,
        HouseholdCommand::Get { code, as_of, output } => {
            let version = connect(connection).await?.get_household(&code, as_of.as_deref().unwrap_or("")).await?;
            output.one(&version, show::version)?;
        }
        HouseholdCommand::History { code, output } => {
            let history = connect(connection).await?.household_history(&code).await?;
            output.list(&history, &history.versions, || show::history(&history))?;
        }
        HouseholdCommand::Find { key, as_of, output } => {
            let client = connect(connection).await?;
            let as_of = as_of.as_deref().unwrap_or("");
            let found = match (&key.citizen_id, &key.certificate) {
                (Some(id), _) => client.find_by_citizen_id(id, as_of).await?,
                (None, Some(number)) => client.find_by_certificate(number, as_of).await?,
                (None, None) => unreachable!("clap requires one of the two"),
            };
            let response = proto::FindHouseholdsResponse { households: found };
            output.list(&response, &response.households, || show::found(&response.households))?;
        }
    }
    Ok(())
}

pub(crate) async fn batches(client: &Client, command: BatchCommand) -> Result<(), Failure> {
    match command {
        BatchCommand::Get { id, output } => output.one(&client.get_batch(&id).await?, show::receipt)?,
        BatchCommand::List { limit, output } => list_batches(client, limit, output).await?,
    }
    Ok(())
}

pub(crate) async fn list_batches(client: &Client, limit: usize, output: OutputArgs) -> Result<(), Failure> {
    let mut batches = Vec::new();
    let mut page_token = String::new();
    loop {
        let page_size = i32::try_from(limit - batches.len()).unwrap_or(i32::MAX);
        let page = client.list_batches(proto::ListBatchesRequest { page_size, page_token }).await?;
        batches.extend(page.batches);
        page_token = page.next_page_token;
        if page_token.is_empty() || batches.len() >= limit {
            break;
        }
    }
    batches.truncate(limit);
    // Cut short by the limit: the token of what follows, for the JSON's nextPageToken.
    let response = proto::ListBatchesResponse { batches, next_page_token: page_token };
    output.list(&response, &response.batches, || show::batches(&response.batches, !response.next_page_token.is_empty()))
}
