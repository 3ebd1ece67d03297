//! `telesub.v1.Members`: converts requests to domain types and calls the member registry.

use telesub_proto::v1::{self as pb, members_server::Members};
use tonic::{Request, Response, Status};

use super::{
    CallContext,
    convert::{member_to_pb, page_size, role_from_pb, status_from_pb},
};
use crate::domain::{
    DomainError, Violations,
    member::{DisplayName, MemberChanges, MemberFilter, MemberStatus, NewMember, OrgCode, Reason, UnitCode},
    members::MemberRegistry,
};

#[derive(Debug, Clone)]
pub struct MembersApi {
    registry: MemberRegistry,
}

impl MembersApi {
    pub fn new(registry: MemberRegistry) -> Self {
        Self { registry }
    }
}

fn optional_unit(s: &str) -> Result<Option<UnitCode>, String> {
    if s.is_empty() { Ok(None) } else { UnitCode::parse(s).map(Some) }
}

fn parse_new_member(r: &pb::RegisterMemberRequest) -> Result<NewMember, DomainError> {
    let mut v = Violations::new();
    let code = v.check("code", OrgCode::parse(&r.code));
    let display_name = v.check("display_name", DisplayName::parse(&r.display_name));
    let role = v.check("role", role_from_pb(r.role));
    let unit = v.check("unit_code", optional_unit(&r.unit_code));
    v.finish()?;
    match (code, display_name, role, unit) {
        (Some(code), Some(display_name), Some(role), Some(unit)) => Ok(NewMember { code, display_name, role, unit }),
        _ => unreachable!("every field parsed when there are no violations"),
    }
}

fn parse_changes(r: &pb::UpdateMemberRequest) -> Result<(OrgCode, MemberChanges), DomainError> {
    let mut v = Violations::new();
    let code = v.check("code", OrgCode::parse(&r.code));
    let display_name = r.display_name.as_deref().and_then(|n| v.check("display_name", DisplayName::parse(n)));
    let role = r.role.and_then(|n| v.check("role", role_from_pb(n)));
    let unit = r.unit_code.as_deref().and_then(|u| v.check("unit_code", optional_unit(u)));
    let reinstate = match r.status.map(status_from_pb) {
        None | Some(Ok(None)) => false,
        Some(Ok(Some(MemberStatus::Active))) => true,
        Some(Ok(Some(MemberStatus::Suspended))) => {
            v.add("status", "use SuspendMember, with a reason, to suspend a member");
            false
        }
        Some(Err(e)) => {
            v.add("status", e);
            false
        }
    };
    v.finish()?;
    let code = code.expect("parsed when there are no violations");
    Ok((code, MemberChanges { display_name, role, unit, reinstate }))
}

#[tonic::async_trait]
impl Members for MembersApi {
    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        // The hub layer resolved the caller moments ago (from the member cache, which every
        // change through the registry clears).
        let caller = ctx.caller()?;
        Ok(Response::new(pb::WhoAmIResponse {
            member: Some(member_to_pb(&caller.member)),
            certificate_fingerprint: caller.fingerprint.clone(),
            request_id: ctx.request_id.clone(),
        }))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let mut v = Violations::new();
        let page_size = v.check("page_size", page_size(r.page_size));
        let role = if r.role == 0 { None } else { v.check("role", role_from_pb(r.role)) };
        let status = v.check("status", status_from_pb(r.status)).flatten();
        v.finish().map_err(|e| ctx.fail(e))?;
        let filter = MemberFilter { role, status };
        let page =
            self.registry.list(&filter, page_size.unwrap_or_default(), &r.page_token).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListMembersResponse {
            members: page.items.iter().map(member_to_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn register_member(
        &self,
        request: Request<pb::RegisterMemberRequest>,
    ) -> Result<Response<pb::RegisterMemberResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let new = parse_new_member(request.get_ref()).map_err(|e| ctx.fail(e))?;
        let member = self.registry.register(new).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::RegisterMemberResponse { member: Some(member_to_pb(&member)) }))
    }

    async fn update_member(
        &self,
        request: Request<pb::UpdateMemberRequest>,
    ) -> Result<Response<pb::UpdateMemberResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let (code, changes) = parse_changes(request.get_ref()).map_err(|e| ctx.fail(e))?;
        let member = self.registry.update(&code, changes).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::UpdateMemberResponse { member: Some(member_to_pb(&member)) }))
    }

    async fn suspend_member(
        &self,
        request: Request<pb::SuspendMemberRequest>,
    ) -> Result<Response<pb::SuspendMemberResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let mut v = Violations::new();
        let code = v.check("code", OrgCode::parse(&r.code));
        let reason = v.check("reason", Reason::parse(&r.reason));
        v.finish().map_err(|e| ctx.fail(e))?;
        let (Some(code), Some(reason)) = (code, reason) else { unreachable!("parsed when there are no violations") };
        let member = self.registry.suspend(&code, reason).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::SuspendMemberResponse { member: Some(member_to_pb(&member)) }))
    }
}
