//! Korean and English labels. The language comes from the `lang` cookie
//! (set by `?lang=ko|en`), else from Accept-Language, else English.

/// A supported language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Korean.
    Ko,
}

impl Lang {
    /// Pick from a cookie value or an Accept-Language header.
    pub fn pick(cookie: Option<&str>, accept: Option<&str>) -> Self {
        match cookie {
            Some("ko") => return Self::Ko,
            Some("en") => return Self::En,
            _ => {}
        }
        if accept.is_some_and(|a| a.trim_start().starts_with("ko")) { Self::Ko } else { Self::En }
    }
    /// The `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ko => "ko",
        }
    }
    /// The label for `key` (the key itself when untranslated, so a gap is visible, not blank).
    pub fn t(self, key: &'static str) -> &'static str {
        let pair = LABELS.iter().find(|(k, _, _)| *k == key);
        match (self, pair) {
            (Self::En, Some((_, en, _))) => en,
            (Self::Ko, Some((_, _, ko))) => ko,
            (_, None) => key,
        }
    }
}

/// (key, English, Korean)
const LABELS: &[(&str, &str, &str)] = &[
    ("app", "FactoryChain", "팩토리체인"),
    ("dashboard", "Machines", "설비 현황"),
    ("alarms", "Alarms", "알람"),
    ("alarm_rules", "Alarm rules", "알람 규칙"),
    ("severity", "Severity", "심각도"),
    ("state", "State", "상태"),
    ("raised_at", "Raised", "발생 시각"),
    ("acknowledge", "Acknowledge", "확인"),
    ("clear_alarm", "Clear", "해제"),
    ("no_alarms", "No alarms.", "알람이 없습니다."),
    ("open_alarms", "Open", "진행 중"),
    ("all_alarms", "All", "전체"),
    ("rule", "Rule", "규칙"),
    ("save_rule", "Save rule", "규칙 저장"),
    ("rule_json", "Rule (JSON)", "규칙 (JSON)"),
    ("no_rules", "No alarm rules yet.", "알람 규칙이 아직 없습니다."),
    ("acknowledged_by", "Acknowledged by", "확인자"),
    ("raised", "raised", "발생"),
    ("acknowledged", "acknowledged", "확인됨"),
    ("cleared", "cleared", "해제됨"),
    ("active_alarms", "active alarms", "진행 중 알람"),
    ("notifications", "Notifications", "알림"),
    ("webhooks", "Webhooks", "웹훅"),
    ("add_webhook", "Add webhook", "웹훅 추가"),
    (
        "webhook_secret_once",
        "The signing secret, shown only now (FactoryChain-Signature: HMAC-SHA256):",
        "서명 비밀키 (지금만 표시됩니다. FactoryChain-Signature: HMAC-SHA256):",
    ),
    ("dead_letters", "Failed deliveries", "전송 실패 목록"),
    ("no_dead_letters", "No failed deliveries.", "전송 실패가 없습니다."),
    ("attempts", "Attempts", "시도 횟수"),
    ("email_alarms", "Alarms by e-mail", "알람 이메일"),
    ("backtest", "Backtest", "백테스트"),
    ("backtest_30d", "Try on the last 30 days", "최근 30일 데이터로 시험"),
    ("backtest_alarms", "alarms it would have raised", "건의 알람이 발생했을 것입니다"),
    (
        "backtest_truncated",
        "Only part of the window was read (too many series or readings).",
        "기간의 일부만 읽었습니다 (시리즈 또는 데이터가 너무 많음).",
    ),
    ("readings", "readings", "데이터"),
    ("series", "series", "시리즈"),
    ("email_to", "Alarms are e-mailed to", "알람을 이메일로 받는 주소:"),
    ("no_email", "You get no alarm e-mails.", "알람 이메일을 받지 않습니다."),
    ("machine_globs", "Machines (globs, comma-separated; empty: all)", "설비 (글롭, 쉼표로 구분; 비우면 전체)"),
    ("subscribe", "E-mail me", "이메일 받기"),
    ("unsubscribe", "Stop e-mails", "이메일 중지"),
    ("recipient", "Recipient", "수신처"),
    ("delete", "Delete", "삭제"),
    ("explore", "Series explorer", "데이터 탐색"),
    ("devices", "Devices", "디바이스"),
    ("users", "Users", "사용자"),
    ("api_keys", "API keys", "API 키"),
    ("usage", "Plan usage", "요금제 사용량"),
    ("logout", "Log out", "로그아웃"),
    ("login", "Log in", "로그인"),
    ("signup", "Sign up", "가입하기"),
    ("email", "E-mail", "이메일"),
    ("password", "Password", "비밀번호"),
    ("name", "Name", "이름"),
    ("company", "Company", "회사명"),
    ("plan", "Plan", "요금제"),
    ("machine", "Machine", "설비"),
    ("metric", "Metric", "측정 항목"),
    ("value", "Value", "값"),
    ("unit", "Unit", "단위"),
    ("updated", "Updated", "갱신"),
    ("status", "Status", "상태"),
    ("running", "Running", "가동 중"),
    ("idle", "Idle", "대기"),
    ("offline", "Offline", "오프라인"),
    (
        "no_machines",
        "No readings yet. Create a device and push readings with its token.",
        "아직 데이터가 없습니다. 디바이스를 만들고 토큰으로 데이터를 보내세요.",
    ),
    ("create_device", "Create device", "디바이스 만들기"),
    ("revoke", "Revoke", "폐기"),
    ("rotate", "New token", "토큰 재발급"),
    ("revoked", "Revoked", "폐기됨"),
    ("active", "Active", "사용 중"),
    ("token_once", "Copy this token now: it is shown only once.", "이 토큰을 지금 복사하세요. 다시 표시되지 않습니다."),
    ("invite", "Invite", "초대"),
    ("role", "Role", "권한"),
    ("change_role", "Change role", "권한 변경"),
    ("create_key", "Create API key", "API 키 만들기"),
    ("range", "Range", "기간"),
    ("step", "Step", "간격"),
    ("aggregation", "Aggregation", "집계"),
    ("show", "Show", "조회"),
    ("export_csv", "Export CSV", "CSV 내보내기"),
    ("live", "Live", "실시간"),
    ("used", "Used", "사용"),
    ("limit", "Limit", "한도"),
    ("readings_per_s", "Readings per second", "초당 측정값"),
    ("retention", "Retention (days)", "보관 기간(일)"),
    ("partners", "Partners", "협력사"),
    ("language", "한국어", "English"),
    ("invalid_login", "E-mail or password is wrong.", "이메일 또는 비밀번호가 올바르지 않습니다."),
    ("too_many", "Too many attempts. Wait a minute.", "시도가 너무 많습니다. 잠시 후 다시 시도하세요."),
    (
        "busy",
        "The server is busy checking other sign-ins. Try again in a moment.",
        "다른 로그인을 확인하느라 서버가 바쁩니다. 잠시 후 다시 시도하세요.",
    ),
    ("your_org_id", "Your organisation id (give it to a buyer)", "우리 회사 조직 ID (구매사에 알려 주세요)"),
    ("suppliers", "Suppliers", "공급사"),
    ("buyers", "Buyers", "구매사"),
    ("supplier_org_id", "Supplier organisation id", "공급사 조직 ID"),
    ("add_partner", "Ask to partner", "협력 요청"),
    ("organisation", "Organisation", "조직"),
    ("pending", "Pending", "대기 중"),
    ("accept", "Accept", "수락"),
    ("end_partnership", "End", "종료"),
    ("pending_invitations", "Pending invitations", "대기 중인 초대"),
    ("expires", "Expires", "만료"),
    ("withdraw", "Withdraw", "철회"),
    (
        "too_many_signups",
        "Too many sign-ups from this network. Try again in an hour.",
        "이 네트워크에서 가입 시도가 너무 많습니다. 한 시간 후 다시 시도하세요.",
    ),
    ("accept_invite", "Join", "참여하기"),
    ("accept_delivery", "Accept delivery", "납품 승인"),
    ("accept_order", "Accept order", "발주 수락"),
    ("acceptance_rule", "Acceptance rule", "검수 기준"),
    ("accepted_units", "Accepted units", "승인 수량"),
    ("account_holder", "Account holder", "예금주"),
    ("account_number", "Account number (or IBAN)", "계좌번호(또는 IBAN)"),
    ("allowed_defects", "Allowed defects", "허용 불량 수"),
    ("amount", "Amount", "금액"),
    ("as_buyer", "as buyer", "구매사로서"),
    ("as_supplier", "as supplier", "공급사로서"),
    ("allow_past_due", "The due date is in the past: issue anyway", "납기가 이미 지났지만 발행"),
    ("bank_account", "Bank account", "지급 계좌"),
    ("bank_code", "Bank code (or BIC)", "은행 코드(또는 BIC)"),
    ("bank_files", "Bank files", "은행 이체 파일"),
    ("bank_reference", "Bank reference", "은행 거래 번호"),
    ("buyer", "Buyer", "구매사"),
    ("cli", "On your own machine", "내 컴퓨터에서"),
    ("confirm_payment", "Confirm payment", "지급 확인"),
    ("decision", "Decision", "판정"),
    ("no_deliveries", "No deliveries.", "납품 내역이 없습니다."),
    ("late", "late", "지연"),
    ("awaiting_receipt", "awaiting receipt", "입고 대기"),
    ("dec_accepted", "accepted", "승인"),
    ("dec_rejected", "rejected", "반려"),
    ("defects", "Defects", "불량"),
    ("deliveries", "Deliveries", "납품"),
    ("design", "Design", "도면"),
    ("design_key", "Design key (public)", "도면 공개 키"),
    ("designs", "Designs", "도면"),
    (
        "designs_help",
        "Designs are encrypted on the sender's machine to the organisations allowed to read them. The platform stores only ciphertext and cannot read it.",
        "도면은 보내는 쪽 컴퓨터에서 열람이 허용된 회사의 키로 암호화됩니다. 플랫폼은 암호문만 보관하며 읽을 수 없습니다.",
    ),
    ("export_bank_file", "Export a new bank file", "새 은행 이체 파일 만들기"),
    ("download_encrypted", "Download (encrypted)", "다운로드(암호화됨)"),
    ("due", "Due", "기한"),
    ("entries", "Entries", "항목 수"),
    ("entry", "Entry", "항목"),
    ("entry_index", "Entry number", "항목 번호"),
    ("inclusion_proof", "Inclusion proof", "포함 증명"),
    ("inspection", "Inspection", "검사"),
    ("issue_order", "Issue order", "발주"),
    (
        "key_help",
        "Make the key pair on your own machine; only the public half is registered here.",
        "키 쌍은 자사 컴퓨터에서 만들고, 공개 키만 여기에 등록합니다.",
    ),
    ("ledger", "Ledger", "원장"),
    (
        "ledger_help",
        "Every step of every order is an entry of the supply network's ledger. Checkpoints are signed every second; anyone in the network can check that no entry was changed or removed.",
        "모든 발주의 모든 단계는 공급망 원장의 항목입니다. 체크포인트는 매초 서명되며, 공급망의 누구나 항목이 바뀌거나 지워지지 않았음을 확인할 수 있습니다.",
    ),
    ("new_order", "New purchase order", "새 발주"),
    (
        "new_order_needs",
        "To order, you need an accepted supplier and a design shared with it.",
        "발주하려면 수락된 공급사와 그 공급사에 공유된 도면이 필요합니다.",
    ),
    ("no_designs", "No designs.", "도면이 없습니다."),
    ("no_key_yet", "No design key registered yet.", "등록된 도면 키가 없습니다."),
    ("no_orders", "No orders.", "발주가 없습니다."),
    (
        "no_bank_account",
        "These suppliers have not entered a bank account: a bank file leaves their payments out until they do.",
        "다음 공급사는 지급 계좌를 등록하지 않았습니다. 등록할 때까지 은행 이체 파일에서 해당 지급이 빠집니다.",
    ),
    ("no_payments", "No payments.", "지급 내역이 없습니다."),
    ("order", "Order", "발주"),
    ("orders", "Orders", "발주"),
    ("org_profile", "Organisation", "회사 정보"),
    ("part", "Part", "품목"),
    ("payment_term", "Payment term (days after acceptance)", "지급 기한(승인 후 일수)"),
    ("penalty", "Penalty", "지체상금"),
    ("penalty_cap", "Penalty cap", "지체상금 한도"),
    ("penalty_per_day", "Late penalty per day", "일별 지체상금"),
    ("published", "Published", "게시"),
    ("quantity", "Quantity", "수량"),
    ("reason", "Reason", "사유"),
    ("receive", "Record receipt", "입고 기록"),
    ("received", "Received", "입고"),
    ("recipients", "Recipients", "열람 허용"),
    ("record_inspection", "Record inspection", "검사 기록"),
    ("register_key", "Register key", "키 등록"),
    ("reissue", "Re-issue (pays these again)", "재발행(다시 지급)"),
    ("reject", "Reject", "반려"),
    ("sample_size", "Sample size", "표본 수"),
    ("sampled", "Sampled", "표본"),
    ("save", "Save", "저장"),
    ("sent", "Sent", "출하"),
    ("ship", "Ship", "출하"),
    ("shipment", "Shipment", "출하 번호"),
    ("st_accepted", "Accepted", "수락됨"),
    ("st_confirmed", "Paid", "지급 완료"),
    ("st_delivered", "Delivered", "납품 완료"),
    ("st_due", "Due", "지급 예정"),
    ("st_in_delivery", "In delivery", "납품 중"),
    ("st_instructed", "Payment instructed", "지급 지시됨"),
    ("st_issued", "Issued", "발주됨"),
    ("st_settled", "Settled", "정산 완료"),
    ("statements", "Statements", "정산 내역"),
    ("supplier", "Supplier", "공급사"),
    ("total", "Total", "합계"),
    ("transit_days", "Transit allowance (days; empty: none)", "운송 허용 일수(비우면 없음)"),
    ("unit_price", "Unit price", "단가"),
    ("verified", "The entry is in the ledger under the signed checkpoint.", "이 항목은 서명된 체크포인트 아래 원장에 있습니다."),
    ("verifier_key", "Ledger key", "원장 검증 키"),
    ("verify", "Verify", "검증"),
    ("version", "Version", "버전"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_has_both_languages_and_is_unique() {
        let mut keys: Vec<_> = LABELS.iter().map(|l| l.0).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), LABELS.len(), "duplicate label key");
        assert!(LABELS.iter().all(|(_, en, ko)| !en.is_empty() && !ko.is_empty()));
        assert_eq!(Lang::pick(None, Some("ko-KR,ko;q=0.9")), Lang::Ko);
        assert_eq!(Lang::pick(Some("en"), Some("ko-KR")), Lang::En);
        assert_eq!(Lang::Ko.t("devices"), "디바이스");
    }
}
