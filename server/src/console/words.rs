//! The console's words: Vietnamese first, with English for a browser that asks for it. The
//! language is the browser's choice, kept in the cookie [`COOKIE`] that the switch in every
//! page's header sets ([`switch`]); it changes nothing on the hub. Numbers, amounts, dates and
//! times read the same in both languages ([`format`](super::format)); data (names, codes,
//! notes) and the domain's own messages are shown as they are.
//!
//! A page's fixed texts are written in Vietnamese, each through [`T::s`], which gives the
//! English of [`en`] on an English page. A test checks that every such text has its English.

use std::convert::Infallible;

use axum::{
    extract::{FromRequestParts, Query},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::pages::{Visitor, failure_in};
use crate::domain::DomainError;

/// The cookie that keeps a browser's language.
pub(super) const COOKIE: &str = "telesub_lang";

/// How long a browser keeps its language: a year.
const KEPT_SECONDS: u32 = 365 * 24 * 60 * 60;

/// The console's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Lang {
    #[default]
    Vi,
    En,
}

impl Lang {
    /// The language's code, as `<html lang>` and the cookie write it.
    pub(super) fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    pub(super) fn parse(code: &str) -> Option<Self> {
        match code {
            "vi" => Some(Lang::Vi),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language a request's cookie chose: English when it says `en`, else Vietnamese.
    pub(super) fn of(headers: &HeaderMap) -> Self {
        let prefix = format!("{COOKIE}=");
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for pair in value.split(';') {
                if let Some(code) = pair.trim().strip_prefix(prefix.as_str()) {
                    return if code.trim() == "en" { Lang::En } else { Lang::Vi };
                }
            }
        }
        Lang::Vi
    }
}

/// A handler's language without a member (for pages that take no [`Visitor`]).
impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Lang::of(&parts.headers))
    }
}

/// A page's words in its language.
#[derive(Debug, Clone, Copy)]
pub(super) struct T(pub(super) Lang);

impl T {
    /// A text written in Vietnamese, in the page's language.
    pub(super) fn s(&self, vi: &'static str) -> &'static str {
        match self.0 {
            Lang::Vi => vi,
            Lang::En => en(vi),
        }
    }

    /// What a discrepancy says, in the page's language.
    pub(super) fn discrepancy(&self, d: &crate::domain::reconciliation::Discrepancy) -> String {
        match self.0 {
            Lang::Vi => crate::export::note(d),
            Lang::En => d.message.clone(),
        }
    }

    /// The page's language code, for `<html lang>`.
    pub(super) fn code(&self) -> &'static str {
        self.0.code()
    }

    /// The code of the language the header's switch offers.
    pub(super) fn other(&self) -> &'static str {
        match self.0 {
            Lang::Vi => Lang::En.code(),
            Lang::En => Lang::Vi.code(),
        }
    }

    /// The switch's label: the other language, named in itself.
    pub(super) fn switch_label(&self) -> &'static str {
        match self.0 {
            Lang::Vi => "English",
            Lang::En => "Tiếng Việt",
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Switch {
    #[serde(default)]
    to: String,
    #[serde(default)]
    back: String,
}

/// Where the switch may send the browser back to: a console page's path (and query), never
/// another site's (no `//`, no backslash, no scheme) nor anything a header cannot carry.
fn safe_back(back: &str) -> bool {
    back.starts_with("/console/")
        && !back.contains("//")
        && !back.contains('\\')
        && !back.contains(':')
        && back.bytes().all(|b| b.is_ascii_graphic())
}

/// `GET /console/language?to=en&back=/console/...`: the browser's language kept in its cookie,
/// then the page it came from (the console's home if `back` is not a console page).
pub(super) async fn switch(visitor: Visitor, Query(asked): Query<Switch>) -> Response {
    let Some(lang) = Lang::parse(asked.to.trim()) else {
        return failure_in(visitor.lang, DomainError::invalid("to", format!("{:?}: choose vi or en", asked.to)));
    };
    let home = HeaderValue::from_static("/console/");
    let location = if safe_back(&asked.back) { HeaderValue::from_str(&asked.back).unwrap_or(home) } else { home };
    let cookie =
        format!("{COOKIE}={}; Path=/console; Secure; HttpOnly; SameSite=Strict; Max-Age={KEPT_SECONDS}", lang.code());
    let cookie = HeaderValue::from_str(&cookie).expect("a cookie of ASCII");
    (StatusCode::SEE_OTHER, [(header::LOCATION, location), (header::SET_COOKIE, cookie)]).into_response()
}

/// The English of a text the console writes in Vietnamese; an unknown text as it is.
pub(super) fn en(vi: &'static str) -> &'static str {
    match vi {
        // Errors and refusals.
        "Chưa xác định được thành viên" => "Member not identified",
        "Không có quyền" => "Not permitted",
        "Không tìm thấy" => "Not found",
        "Hệ thống tạm thời không phục vụ được" => "The system cannot serve for the moment",
        "Quá thời gian chờ" => "Timed out",
        "Lỗi hệ thống" => "System error",
        "Yêu cầu chưa hợp lệ" => "Invalid request",
        "Không thực hiện được" => "Could not be done",
        "Trường" => "Field",
        "Vấn đề" => "Problem",
        "Về trang chính" => "Back to the home page",

        // The header and the home page.
        "Hỗ trợ viễn thông hộ nghèo" => "Telecom support for poor households",
        "Trang chính" => "Home",
        "Vai trò" => "Role",
        "Tra cứu hộ trong danh sách" => "Look up households on the list",
        "Số liệu của chương trình" => "Programme statistics",
        "Ai đã tra cứu một người, một hộ" => "Who looked up a person or a household",
        "Các đợt kiểm tra" => "Inspections",
        "Thành viên" => "Members",
        "Đối soát danh sách thuê bao hằng tháng" => "Monthly reconciliation of subscriber lists",

        // Roles.
        "Sở Thông tin và Truyền thông" => "Department of Information and Communications",
        "Sở Lao động – Thương binh và Xã hội" => "Department of Labour, Invalids and Social Affairs",
        "Doanh nghiệp viễn thông" => "Telecom operator",
        "UBND huyện, thành phố" => "District or city People’s Committee",
        "UBND tỉnh" => "Provincial People’s Committee",
        "Sở Giáo dục và Đào tạo" => "Department of Education and Training",
        "Sở Y tế" => "Department of Health",

        // Common words.
        "Trang sau" => "Next page",
        "Tìm" => "Search",
        "Xem" => "Show",
        "Lọc" => "Filter",
        "Gửi" => "Send",
        "Mã" => "Code",
        "Tên" => "Name",
        "Mã hộ" => "Household code",
        "Mã xã" => "Commune code",
        "Xã" => "Commune",
        "Diện" => "Category",
        "Chủ hộ" => "Head of household",
        "CCCD" => "Citizen ID",
        "Số CCCD" => "Citizen ID",
        "Trạng thái" => "Status",
        "Ghi chú" => "Note",
        "Lý do" => "Reason",
        "Đơn vị" => "Unit",
        "Ngày" => "Date",
        "ngày" => "dated",
        "Tháng" => "Month",
        "tháng" => "month",
        "Tháng (YYYY-MM)" => "Month (YYYY-MM)",
        "Tháng trước" => "Previous month",
        "Quyết định" => "Decision",
        "Danh sách" => "List",
        "của" => "of",
        "Từ" => "From",
        "đến" => "to",
        "Doanh nghiệp" => "Operator",
        "Tải về" => "Download",
        "Cộng" => "Total",

        // Supervision.
        "Nhật ký truy cập" => "Access log",
        "Ai đã tra cứu" => "Who looked up",
        "Kiểm tra toàn vẹn nhật ký" => "Check the integrity of the log",
        "Lúc" => "At",
        "Yêu cầu" => "Request",
        "Kết quả" => "Result",
        "Mã yêu cầu" => "Request ID",
        "Không có bản ghi nào." => "No records.",
        "Kiểm tra nhật ký" => "Log check",
        "Nhật ký toàn vẹn." => "The log is intact.",
        "Nhật ký KHÔNG toàn vẹn." => "The log is NOT intact.",
        "Số bản ghi" => "Records",
        "Bản ghi cuối" => "Last record",
        "Mã băm cuối" => "Last hash",
        "Điểm kiểm tra đã đối chiếu" => "Checkpoints verified",
        "Chỗ hỏng đầu tiên" => "First break",
        "Thiếu cơ chế bảo vệ" => "Guards missing",

        // The household register and its batches.
        "Danh sách hộ" => "Household list",
        "Tra cứu hộ" => "Look up a household",
        "Tìm theo" => "Search by",
        "Số CCCD của thành viên" => "A member’s citizen ID",
        "Số giấy chứng nhận" => "Certificate number",
        "Không tìm thấy hộ nào." => "No household found.",
        "Hộ" => "Household",
        "quá trình" => "history",
        "Ra khỏi danh sách" => "Removed from the list",
        "Giấy chứng nhận" => "Certificate",
        "Họ tên" => "Full name",
        "Quan hệ" => "Relationship",
        "Năm sinh" => "Year of birth",
        "Đợt cập nhật" => "Update",
        "ghi lúc" => "recorded at",
        "Các đợt cập nhật" => "Updates",
        "Các đợt cập nhật danh sách" => "List updates",
        "Các đợt cập nhật danh sách hộ" => "Updates of the household list",
        "Gửi danh sách hộ" => "Send a household list",
        "Gửi danh sách hộ (tệp CSV)" => "Send a household list (CSV file)",
        "Đợt" => "Batch",
        "Loại" => "Kind",
        "Kỳ" => "Period",
        "Hiệu lực" => "Effective",
        "Số hộ gửi" => "Households sent",
        "Thêm" => "Added",
        "Thay đổi" => "Changes",
        "Không đổi" => "Unchanged",
        "Gửi bởi" => "Sent by",
        "Áp dụng lúc" => "Applied at",
        "Mã băm nội dung" => "Content hash",
        "Chưa có đợt cập nhật nào." => "No updates yet.",
        "Rà soát (toàn bộ danh sách)" => "Review (the whole list)",
        "Biên nhận" => "Receipt",
        "Biên nhận đợt" => "Receipt for batch",
        "Đợt này đã được gửi và áp dụng trước đó với đúng nội dung này; không có gì thay đổi." => {
            "This batch was sent and applied before with exactly this content; nothing changed."
        }
        "Đã áp dụng." => "Applied.",
        "Tệp theo mẫu trong" => "The file follows the template in",
        "mỗi thành viên của hộ một dòng. Nếu có dòng sai, không dòng nào được lưu và trang sẽ nêu từng dòng, từng cột sai." => {
            "one line for each member of a household. If a line is wrong, no line is kept and the page names \
             each wrong line and column."
        }
        "Mã đợt" => "Batch ID",
        "Ngày hiệu lực" => "Effective date",
        "Tệp CSV" => "CSV file",

        // Categories, relationships, removals.
        "Hộ nghèo" => "Poor household",
        "Hộ cận nghèo" => "Near-poor household",
        "Gia đình chính sách xã hội" => "Social policy family",
        "Gia đình người có công" => "Family of a person of merit",
        "Khác" => "Other",
        "Vợ/chồng" => "Spouse",
        "Con" => "Child",
        "Bố/mẹ" => "Parent",
        "Cháu" => "Grandchild",
        "Ông/bà" => "Grandparent",
        "Anh/chị/em" => "Sibling",
        "Thoát nghèo" => "Out of poverty",
        "Chuyển đi" => "Moved away",
        "Chết" => "Deceased",
        "Ghi nhầm" => "Recorded in error",
        "Không có trong kỳ rà soát" => "Not in the review",

        // Monthly reconciliation.
        "Đối soát" => "Reconciliation",
        "Đối soát tháng" => "Reconciliation for",
        "Số dòng" => "Lines",
        "Số thuê bao đề nghị" => "Subscribers claimed",
        "Số tiền đề nghị" => "Amount claimed",
        "Số tiền có thể xác nhận" => "Amount confirmable",
        "Nhận lúc" => "Received at",
        "Chưa có danh sách nào cho tháng" => "No lists yet for",
        "Cộng (không kể danh sách đã được thay thế)" => "Total (without the lists that were replaced)",
        "Sai lệch theo mã" => "Discrepancies by code",
        "Ý nghĩa" => "Meaning",
        "Đang nhận" => "Receiving",
        "Đã đối soát, chờ xác nhận" => "Reconciled, awaiting confirmation",
        "Đã xác nhận" => "Confirmed",
        "Bị từ chối" => "Rejected",
        "Đã được thay thế" => "Superseded",
        "Không thuộc diện hỗ trợ" => "Not eligible for support",
        "Đã hết diện hỗ trợ" => "Eligibility ended",
        "Trước ngày được hỗ trợ" => "Before support started",
        "Vượt số thuê bao được hỗ trợ" => "Over the number of supported subscribers",
        "Chưa đăng ký hỗ trợ" => "Not enrolled for support",
        "Không khớp thông tin đăng ký" => "Does not match the enrolment",
        "Trùng trong cùng doanh nghiệp" => "Duplicate within an operator",
        "Trùng giữa các doanh nghiệp" => "Duplicate across operators",
        "Không phát sinh sử dụng" => "No usage",
        "Thuê bao không xác định" => "Unknown subscriber",
        "Số dòng hợp lệ" => "Valid lines",
        "Đăng ký không có trong danh sách" => "Enrolments not on the list",
        "Tải về các dòng" => "Download the lines",
        "các dòng đã xác nhận" => "the confirmed lines",
        "Xác nhận" => "Confirm",
        "Các dòng hợp lệ" => "The valid lines",
        "Cả danh sách" => "The whole list",
        "Từ chối" => "Reject",
        "Các dòng có sai lệch" => "Lines with discrepancies",
        "(tất cả)" => "(all)",
        "Số thuê bao" => "Phone number",
        "Sai lệch" => "Discrepancies",
        "Không có dòng nào có sai lệch" => "No line has a discrepancy",
        "theo bộ lọc này" => "with this filter",

        // One line.
        "Dòng" => "Line",
        "của danh sách" => "of list",
        "Dòng hợp lệ: không có sai lệch." => "The line is valid: no discrepancies.",
        "được hỗ trợ" => "supported:",
        "Những ngày cần xem" => "Days that matter",
        "Quá trình của hộ" => "History of household",
        "Hộ không có trong danh sách hộ (hoặc không thuộc đơn vị của thành viên này)." => {
            "The household is not on the household list (or not in this member’s unit)."
        }
        "Áp dụng vào ngày" => "Applies on",
        "ngày đầu tháng" => "the month’s first day",
        "ngày cuối tháng" => "the month’s last day",
        "có" => "yes",
        "không" => "no",
        "CCCD của chủ thuê bao" => "Subscriber’s citizen ID",
        "Mã đăng ký hỗ trợ" => "Enrolment ID",
        "Dịch vụ" => "Service",
        "Gói cước" => "Package",
        "Giá cước" => "Tariff",
        "Số ngày sử dụng dịch vụ" => "Days of service",
        "Có phát sinh sử dụng" => "Used",
        "Số tháng liền không sử dụng" => "Months in a row without use",

        // Statistics.
        "Số liệu tháng" => "Figures for",
        "Mã huyện hoặc xã (để trống: cả tỉnh)" => "District or commune code (empty: the whole province)",
        "Tính đến ngày" => "As of",
        "chính sách phiên bản" => "policy version",
        "tính lúc" => "counted at",
        "số liệu được tính lại sau mỗi" => "figures are counted again every",
        "phút" => "minutes",
        "Theo diện" => "By category",
        "Số hộ đủ điều kiện và số hộ đã đăng ký theo diện" => {
            "Eligible and enrolled households by category"
        }
        "Đủ điều kiện" => "Eligible",
        "Đã đăng ký" => "Enrolled",
        "Số hộ trong danh sách" => "Households on the list",
        "Đủ điều kiện hỗ trợ" => "Eligible for support",
        "Được phân bổ" => "Allocated",
        "Theo doanh nghiệp" => "By operator",
        "Thuê bao đăng ký" => "Subscribers enrolled",
        "Thuê bao đề nghị" => "Subscribers claimed",
        "Số tiền đề nghị tháng" => "Amount claimed for",
        "Thuê bao được xác nhận" => "Subscribers confirmed",
        "Số tiền được xác nhận" => "Amount confirmed",
        "Chưa có số liệu của doanh nghiệp nào." => "No operator’s figures yet.",

        // Devices.
        "Phân bổ thiết bị" => "Device allocation",
        "Phân bổ máy tính bảng và điện thoại thông minh" => "Allocation of tablets and smartphones",
        "Máy tính bảng" => "Tablet",
        "Điện thoại thông minh" => "Smartphone",
        "Điện thoại" => "Phone",
        "Thiết bị" => "Device",
        "Chưa có quyết định phân bổ nào." => "No allocation decisions yet.",
        "Hỗ trợ bằng tiền thay thiết bị" => "Cash instead of a device",
        "Quyết định phê duyệt" => "Approval decision",
        "UBND tỉnh quyết định" => "Decided by the Provincial People’s Committee",
        "Số lần điều chỉnh danh sách" => "Amendments to the list",
        "Danh sách hộ theo thứ tự" => "Households in order",
        "Danh sách công khai" => "Published list",
        "bảng niêm yết của xã (mã xã)" => "a commune’s notice board (commune code)",
        "Lập danh sách đề xuất theo quy tắc" => "Draw up the proposed list by the rules",
        "Theo danh sách hộ ngày (để trống: hôm nay)" => "From the household list as of (empty: today)",
        "Lập danh sách" => "Draw up the list",
        "Điều chỉnh danh sách" => "Amend the list",
        "Thao tác" => "Action",
        "Thêm hộ" => "Add a household",
        "Bớt hộ" => "Remove a household",
        "Thiết bị (khi thêm)" => "Device (when adding)",
        "Điều chỉnh" => "Amend",
        "Trình UBND tỉnh phê duyệt" => "Submit to the Provincial People’s Committee for approval",
        "Trình phê duyệt" => "Submit for approval",
        "Phê duyệt danh sách" => "Approve the list",
        "Số quyết định phê duyệt" => "Number of the approval decision",
        "Ngày quyết định (để trống: hôm nay)" => "Date of the decision (empty: today)",
        "Phê duyệt" => "Approve",
        "Trả lại để điều chỉnh" => "Return for revision",
        "Cần điều chỉnh gì" => "What needs revising",
        "Trả lại" => "Return",
        "Ghi nhận bàn giao thiết bị" => "Record a device hand-over",
        "Ngày bàn giao" => "Hand-over date",
        "Người nhận" => "Received by",
        "Số sê-ri" => "Serial number",
        "Ghi nhận" => "Record",
        "Các lần điều chỉnh" => "Amendments",
        "Lần" => "Revision",
        "Người điều chỉnh" => "Amended by",
        "Tiến độ theo đơn vị" => "Progress by unit",
        "Trong danh sách" => "On the list",
        "Đã bàn giao thiết bị" => "Devices handed over",
        "Đã nhận tiền" => "Cash received",
        "Chưa bàn giao" => "Not yet handed over",
        "Chưa lập danh sách." => "No list drawn up yet.",
        "Danh sách hộ được phân bổ theo quyết định" => "Households allocated under decision",
        "Theo thứ tự ưu tiên: nhóm ưu tiên của chính sách, rồi thứ tự trong nhóm như quy tắc phân bổ quy định." => {
            "In order of priority: the policy’s priority groups, then the order within a group that the \
             allocation rules set."
        }
        "Mã đơn vị" => "Unit code",
        "Thứ tự" => "Rank",
        "Nhóm ưu tiên" => "Priority group",
        "Đã bàn giao" => "Handed over",
        "Danh sách chưa có hộ nào." => "The list has no households yet.",
        "Đã ghi nhận quyết định" => "Decision recorded",
        "Đã lập danh sách đề xuất" => "List proposed",
        "Đã trình UBND tỉnh" => "Submitted to the Provincial People’s Committee",
        "UBND tỉnh trả lại" => "Returned by the Provincial People’s Committee",
        "UBND tỉnh đã phê duyệt" => "Approved by the Provincial People’s Committee",
        "Bớt" => "Removed",
        "Toàn tỉnh" => "Whole province",
        "được đề cử" => "nominated",
        "bổ sung khi điều chỉnh" => "added by an amendment",

        // Members.
        "Thành viên kết nối với hệ thống" => "Members connected to the hub",
        "Cập nhật lúc" => "Updated at",
        "Đang hoạt động" => "Active",
        "Tạm ngừng:" => "Suspended:",
        "Tạm ngừng" => "Suspend",
        "Đăng ký thành viên mới" => "Register a new member",
        "Mã huyện (chính quyền địa phương)" => "District code (local government)",
        "Đăng ký" => "Register",

        // Inspections.
        "Kiểm tra" => "Inspections",
        "Kiểm tra số" => "Inspection no.",
        "Thời gian" => "Period",
        "Đối tượng" => "Subject",
        "Đoàn kiểm tra" => "Inspection team",
        "Kết luận" => "Conclusion",
        "Số hộ lấy mẫu" => "Households sampled",
        "Phát hiện" => "Findings",
        "Số" => "No.",
        "Mức độ" => "Severity",
        "Nội dung" => "Description",
        "Yêu cầu khắc phục" => "Required action",
        "Hạn" => "Due",
        "Đã làm gì" => "What was done",
        "Ghi nhận phát hiện" => "Record a finding",
        "Tài liệu chứng minh" => "Evidence reference",
        "Kết thúc đợt kiểm tra" => "Close the inspection",
        "Kết thúc" => "Close",
        "Mở đợt kiểm tra" => "Open an inspection",
        "Tên đợt kiểm tra" => "Title",
        "Căn cứ" => "Basis",
        "Kế hoạch năm" => "Yearly plan",
        "Yêu cầu của cơ quan có thẩm quyền" => "Request of an authority",
        "Cơ quan yêu cầu" => "Requested by",
        "Đơn vị được kiểm tra (mã, cách nhau bởi dấu phẩy)" => {
            "Units inspected (codes, separated by commas)"
        }
        "Doanh nghiệp được kiểm tra (mã, cách nhau bởi dấu phẩy)" => {
            "Operators inspected (codes, separated by commas)"
        }
        "Đoàn kiểm tra (mỗi dòng: họ tên; cơ quan; vai trò)" => {
            "Team (one per line: name; organisation; role)"
        }
        "Từ ngày" => "From",
        "Đến ngày" => "To",
        "Nhóm" => "View",
        "Chưa ai tra cứu người này." => "Nobody has looked this person up.",
        "Các lần tra cứu người này" => "Look-ups of this person",
        "Dữ liệu cá nhân của một người và các lần tra cứu" => "A person's data and its look-ups",
        "Dữ liệu cá nhân" => "Personal data",
        "Hộ gia đình có tên người này" => "Households that name this person",
        "Không có hộ nào có tên người này." => "No household names this person.",
        "Không có thuê bao nào." => "No subscription.",
        "Lập lúc" => "Made at",
        "Thuê bao được hỗ trợ đứng tên người này" => "Subsidised lines in this person's name",
        "Tải về (CSV)" => "Download (CSV)",
        "Việc lập báo cáo này cũng được ghi vào nhật ký truy cập." => {
            "Making this report is itself recorded in the audit trail."
        }
        "ra khỏi danh sách" => "off the list",
        "Còn các lần tra cứu khác: thu hẹp khoảng thời gian ở trang nhật ký." => {
            "There are more look-ups: narrow the time range on the audit page."
        }
        "Thiết bị được phân bổ" => "Devices allocated",
        "Thiết bị đã bàn giao" => "Devices handed over",
        "Đã đăng ký tháng trước" => "Enrolled the month before",
        "Bảng công khai" => "Public table",
        "Như được công bố: số nhỏ hơn" => "As published: counts under",
        "được ghi" => "are shown as",
        "ô ghi x được ẩn để không suy ra được số nhỏ từ các số khác" => {
            "cells marked x are hidden so that a small count cannot be worked out from the others"
        }
        "Sổ số liệu (XLSX)" => "Workbook (XLSX)",
        "Bảng công khai (CSV)" => "Public table (CSV)",
        "Chưa có phát hiện nào." => "No findings yet.",
        "Chưa có đợt kiểm tra nào." => "No inspections yet.",
        "Thấp" => "Low",
        "Trung bình" => "Medium",
        "Cao" => "High",
        "Nghiêm trọng" => "Critical",
        "Chưa xử lý" => "Open",
        "Đang khắc phục" => "Being remedied",
        "Đã khắc phục" => "Remedied",
        "Đang kiểm tra" => "Under way",
        "Đã kết thúc" => "Closed",

        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every text written through `T::s` in `text`: from the call's opening quote to the next
    /// closing quote and parenthesis.
    fn texts(text: &str) -> Vec<String> {
        let opening = concat!("t.s", "(\"");
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find(opening) {
            rest = &rest[at + opening.len()..];
            let Some(end) = rest.find("\")") else { break };
            found.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
        found
    }

    fn files(dir: &std::path::Path, ending: &str) -> Vec<(String, String)> {
        let mut found: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.to_string_lossy().ends_with(ending))
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                (path.display().to_string(), text)
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn every_text_of_the_pages_has_its_english() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut read = files(&root.join("templates/console"), ".html");
        read.extend(files(&root.join("src/console"), ".rs"));
        let (mut seen, mut missing) = (0, Vec::new());
        for (path, text) in &read {
            for vi in texts(text) {
                seen += 1;
                // `en` matches the texts the code holds, which are `'static`.
                let vi: &'static str = Box::leak(vi.into_boxed_str());
                if en(vi) == vi {
                    missing.push(format!("{path}: {vi:?}"));
                }
            }
        }
        assert!(seen > 200, "only {seen} texts found: is the scan reading the files?");
        assert!(missing.is_empty(), "texts without their English:\n{}", missing.join("\n"));
    }

    #[test]
    fn the_cookie_chooses_english_and_anything_else_is_vietnamese() {
        let with = |cookie: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, cookie.parse().unwrap());
            Lang::of(&headers)
        };
        assert_eq!(Lang::of(&HeaderMap::new()), Lang::Vi);
        assert_eq!(with("telesub_lang=en"), Lang::En);
        assert_eq!(with("a=b; telesub_lang=en ; c=d"), Lang::En);
        assert_eq!(with("telesub_lang=vi"), Lang::Vi);
        assert_eq!(with("telesub_lang=fr"), Lang::Vi);
        assert_eq!(with("xtelesub_lang=en"), Lang::Vi);
        assert_eq!(T(Lang::En).s("Đối soát tháng"), "Reconciliation for");
        assert_eq!(T(Lang::Vi).s("Đối soát tháng"), "Đối soát tháng");
        assert_eq!(en("VNPT"), "VNPT");
    }

    #[test]
    fn the_switch_goes_back_to_console_pages_only() {
        assert!(safe_back("/console/reconciliation?period=2025-03"));
        assert!(safe_back("/console/reconciliation/VNPT/vn%2D2025%2D03"));
        for bad in [
            "",
            "/",
            "/console",
            "https://evil.example/",
            "//evil.example/console/",
            "/console//evil.example",
            "/console/\\evil.example",
            "/console/x?u=javascript:alert(1)",
            "/console/a b",
            "/console/\r\nx",
            "/console/Đ",
        ] {
            assert!(!safe_back(bad), "{bad:?}");
        }
    }
}
