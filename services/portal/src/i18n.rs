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
    ("no_machines", "No readings yet. Create a device and push readings with its token.", "아직 데이터가 없습니다. 디바이스를 만들고 토큰으로 데이터를 보내세요."),
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
    ("too_many_signups", "Too many sign-ups from this network. Try again in an hour.", "이 네트워크에서 가입 시도가 너무 많습니다. 한 시간 후 다시 시도하세요."),
    ("accept_invite", "Join", "참여하기"),
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
