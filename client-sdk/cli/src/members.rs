//! `members …`: the organisations that may use the hub (ICT).
//!
//! ```text
//! telesub-cli --tls-dir ./dev-tls --org DOICT members list
//! telesub-cli --tls-dir ./dev-tls --org DOICT members register MOBIFONE --role operator --name "Tổng công ty Viễn thông MobiFone"
//! telesub-cli --tls-dir ./dev-tls --org DOICT members register DAKMIL --role locality --unit 662 --name "UBND huyện Đắk Mil"
//! telesub-cli --tls-dir ./dev-tls --org DOICT members suspend MOBIFONE --reason "hợp đồng chấm dứt"
//! telesub-cli --tls-dir ./dev-tls --org DOICT members reinstate MOBIFONE
//! ```

use clap::{Subcommand, ValueEnum};
use telesub_client::{Client, proto};

use crate::{
    Failure,
    output::OutputArgs,
    show::{field, short, table, timestamp},
};

#[derive(Subcommand)]
pub(crate) enum MembersCommand {
    /// Every member, in code order, with its role, unit and status.
    List {
        /// Only members with this role.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// Only the suspended members.
        #[arg(long)]
        suspended: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Adds an organisation; it may call the hub with a certificate naming its code.
    Register {
        /// The organisation code in its certificate (`urn:telesub:org:CODE`).
        code: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The display name, e.g. "Sở Giáo dục và Đào tạo".
        #[arg(long, value_name = "TEXT")]
        name: String,
        /// The district or commune a LOCALITY member is scoped to.
        #[arg(long, value_name = "CODE", required_if_eq("role", "locality"))]
        unit: Option<String>,
    },
    /// Stops a member from using the hub: all its certificates are refused from the next call.
    Suspend {
        code: String,
        /// Why; required.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Lets a suspended member use the hub again.
    Reinstate { code: String },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoleArg {
    Labour,
    Operator,
    Ict,
    ProvinceCommittee,
    Locality,
    Education,
    Health,
}

impl From<RoleArg> for proto::Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Labour => proto::Role::Labour,
            RoleArg::Operator => proto::Role::Operator,
            RoleArg::Ict => proto::Role::Ict,
            RoleArg::ProvinceCommittee => proto::Role::ProvinceCommittee,
            RoleArg::Locality => proto::Role::Locality,
            RoleArg::Education => proto::Role::Education,
            RoleArg::Health => proto::Role::Health,
        }
    }
}

pub(crate) async fn members(client: &Client, command: MembersCommand) -> Result<(), Failure> {
    match command {
        MembersCommand::List { role, suspended, output } => {
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_members(proto::ListMembersRequest {
                        page_size: 500,
                        page_token,
                        role: role.map(proto::Role::from).unwrap_or_default().into(),
                        status: if suspended {
                            proto::MemberStatus::Suspended
                        } else {
                            proto::MemberStatus::Unspecified
                        }
                        .into(),
                    })
                    .await?;
                all.extend(page.members);
                page_token = page.next_page_token;
                if page_token.is_empty() {
                    break;
                }
            }
            let response = proto::ListMembersResponse { members: all, next_page_token: String::new() };
            output.list(&response, &response.members, || {
                let rows = response
                    .members
                    .iter()
                    .map(|m| {
                        vec![
                            m.code.clone(),
                            short(m.role().as_str_name(), "ROLE_").to_owned(),
                            m.unit_code.clone(),
                            short(m.status().as_str_name(), "MEMBER_STATUS_").to_owned(),
                            m.certificates.len().to_string(),
                            m.display_name.clone(),
                        ]
                    })
                    .collect();
                table(&["code", "role", "unit", "status", "certificates", "name"], rows, "");
            })?;
        }
        MembersCommand::Register { code, role, name, unit } => {
            let member = client
                .register_member(proto::RegisterMemberRequest {
                    code,
                    display_name: name,
                    role: proto::Role::from(role).into(),
                    unit_code: unit.unwrap_or_default(),
                })
                .await?;
            member_fields(&member);
        }
        MembersCommand::Suspend { code, reason } => member_fields(&client.suspend_member(&code, &reason).await?),
        MembersCommand::Reinstate { code } => {
            let member = client
                .update_member(proto::UpdateMemberRequest {
                    code,
                    status: Some(proto::MemberStatus::Active.into()),
                    ..Default::default()
                })
                .await?;
            member_fields(&member);
        }
    }
    Ok(())
}

fn member_fields(m: &proto::Member) {
    field("organisation", &m.code);
    field("name", &m.display_name);
    field("role", short(m.role().as_str_name(), "ROLE_"));
    if !m.unit_code.is_empty() {
        field("unit", &m.unit_code);
    }
    field("status", short(m.status().as_str_name(), "MEMBER_STATUS_"));
    if !m.status_reason.is_empty() {
        field("reason", &m.status_reason);
    }
    field("certificates", m.certificates.len().to_string());
    field("registered", timestamp(m.created_at.as_ref()));
}
