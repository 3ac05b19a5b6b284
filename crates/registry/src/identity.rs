//! Portal identity: users and roles, sessions, invitations and API keys.
//!
//! Invariants:
//! - passwords are stored only as argon2id PHC strings;
//! - session ids, invitation tokens and API keys are 256-bit random values stored
//!   only as SHA-256 hashes, shown once;
//! - every lookup that takes an object id also takes the caller's tenant, and an
//!   object of another tenant is "not found".

use crate::kv::Table;
use crate::{Registry, RegistryError, random_hex, sha256, validate_name};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Sessions last this long.
pub const SESSION_TTL_MS: i64 = 12 * 3_600_000;
/// Invitations are valid this long.
pub const INVITE_TTL_MS: i64 = 7 * 86_400_000;

/// What a member of a tenant may do. The written matrix is in docs/permissions.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads dashboards, series and exports.
    Viewer,
    /// Viewer, plus devices (create, revoke) and machine operations.
    Operator,
    /// Operator, plus users, roles, invitations, API keys and the plan.
    Owner,
}

impl Role {
    /// Parse "viewer" | "operator" | "owner".
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "owner" => Ok(Self::Owner),
            _ => Err(RegistryError::Invalid(format!("role: {s:?} is not viewer, operator or owner"))),
        }
    }
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Owner => "owner",
        }
    }
    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// A portal user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    /// `u_` + 16 hex digits.
    pub id: String,
    /// Tenant the user belongs to.
    pub tenant_id: String,
    /// Login e-mail, lowercase.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role in the tenant.
    pub role: Role,
    /// Creation time, Unix ms.
    pub created_ms: i64,
    password_phc: String,
}

/// A signed-in session.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// User id.
    pub user_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Role at sign-in (re-read from the user on every request by [`Registry::session`]).
    pub role: Role,
    /// Synchronizer token every form must carry.
    pub csrf: String,
    /// Expiry, Unix ms.
    pub expires_ms: i64,
}

/// An API key for machine clients (shown once at creation).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiKey {
    /// `k_` + 16 hex digits.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Label.
    pub name: String,
    /// What the key may do (owner keys are not issued).
    pub role: Role,
    /// Creation time.
    pub created_ms: i64,
    /// Revocation time.
    pub revoked_ms: Option<i64>,
    secret_sha256: String,
}

/// A pending invitation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Invitation {
    /// `i_` + 16 hex digits: names the invitation for listing and withdrawal
    /// (the token itself is never stored).
    #[serde(default)]
    pub id: String,
    /// Hex SHA-256 of the token: the row's key.
    #[serde(default)]
    token_sha256: String,
    /// Tenant.
    pub tenant_id: String,
    /// Invitee e-mail, lowercase.
    pub email: String,
    /// Role granted on acceptance.
    pub role: Role,
    /// Expiry, Unix ms.
    pub expires_ms: i64,
}

pub(crate) fn normalise_email(email: &str) -> Result<String, RegistryError> {
    let e = email.trim().to_ascii_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"'".contains(c));
    if ok { Ok(e) } else { Err(RegistryError::Invalid("email: not a valid address".into())) }
}

pub(crate) fn check_password(pw: &str) -> Result<(), RegistryError> {
    if pw.chars().count() < 10 || pw.len() > 1024 {
        return Err(RegistryError::Invalid("password: must be 10 to 1024 characters".into()));
    }
    Ok(())
}

/// Counts the argon2id work of a registry: how much ran, and the most that ran at
/// once. The portal bounds that concurrency; this is how tests (and a debugger) see
/// that the bound holds.
#[derive(Debug, Default)]
pub(crate) struct PasswordWork {
    running: AtomicUsize,
    peak: AtomicUsize,
    total: AtomicU64,
}

/// What [`Registry::password_work`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordWorkStats {
    /// Hashes and verifications run since the registry was opened.
    pub total: u64,
    /// The most that ran at the same time.
    pub peak_concurrent: usize,
}

impl PasswordWork {
    fn run<T>(&self, work: impl FnOnce() -> T) -> T {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::SeqCst);
        let out = work();
        self.running.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

fn hash_password(pw: &str) -> Result<String, RegistryError> {
    Argon2::default().hash_password(pw.as_bytes()).map(|h| h.to_string()).map_err(|e| RegistryError::Storage(format!("argon2: {e}")))
}

impl Registry {
    /// Create the first (owner) user of a tenant, or any user by an owner. Enforces the plan's user quota.
    pub fn create_user(&self, tenant_id: &str, email: &str, name: &str, role: Role, password: &str) -> Result<User, RegistryError> {
        let tenant = self.get_tenant(tenant_id)?;
        let email = normalise_email(email)?;
        let name = validate_name("name", name)?;
        check_password(password)?;
        let plan = tenant.plan();
        if self.list_users(tenant_id)?.len() as u32 >= plan.max_users {
            return Err(RegistryError::QuotaExceeded(format!("the {} plan allows {} users", plan.name, plan.max_users)));
        }
        let user = User {
            id: format!("u_{}", random_hex(8)),
            tenant_id: tenant_id.into(),
            email: email.clone(),
            name,
            role,
            created_ms: fc_core::time::now_ms(),
            password_phc: self.password_work.run(|| hash_password(password))?,
        };
        if !self.kv.insert_new(Table::Emails, "", &email, user.id.as_bytes())? {
            return Err(RegistryError::AlreadyExists("a user with this e-mail".into()));
        }
        self.put_json(Table::Users, tenant_id, &user.id, &user, None)?;
        Ok(user)
    }

    /// Users of a tenant, by e-mail.
    pub fn list_users(&self, tenant_id: &str) -> Result<Vec<User>, RegistryError> {
        let mut users: Vec<User> = self.scan(Table::Users, tenant_id)?;
        users.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(users)
    }

    /// One user of the tenant.
    pub fn get_user(&self, tenant_id: &str, user_id: &str) -> Result<User, RegistryError> {
        self.get_json::<User>(Table::Users, user_id)?
            .filter(|u| u.tenant_id == tenant_id)
            .ok_or_else(|| RegistryError::NotFound("user".into()))
    }

    /// Change a user's role. The last owner cannot be demoted.
    pub fn set_role(&self, tenant_id: &str, user_id: &str, role: Role) -> Result<User, RegistryError> {
        let mut user = self.get_user(tenant_id, user_id)?;
        if user.role == Role::Owner
            && role != Role::Owner
            && self.list_users(tenant_id)?.iter().filter(|u| u.role == Role::Owner).count() == 1
        {
            return Err(RegistryError::FailedPrecondition("the last owner cannot be demoted".into()));
        }
        user.role = role;
        self.put_json(Table::Users, tenant_id, &user.id, &user, None)?;
        Ok(user)
    }

    /// Check an e-mail and password. Every failure is the same error (no hint whether the e-mail exists).
    pub fn login(&self, email: &str, password: &str) -> Result<User, RegistryError> {
        let email = normalise_email(email).map_err(|_| RegistryError::Unauthenticated)?;
        let id = self.kv.get(Table::Emails, &email)?.map(|v| String::from_utf8_lossy(&v).into_owned());
        let user = match id {
            Some(id) => self.get_json::<User>(Table::Users, &id)?,
            None => None,
        };
        // Spend the same time on an unknown e-mail as on a real check (a dummy hash),
        // so timing does not reveal which e-mails exist.
        let phc = user.as_ref().map_or(DUMMY_PHC, |u| u.password_phc.as_str());
        let verified = self.password_work.run(|| Argon2::default().verify_password(password.as_bytes(), phc).is_ok());
        match user {
            Some(u) if verified => Ok(u),
            _ => Err(RegistryError::Unauthenticated),
        }
    }

    /// The argon2id work done so far (see [`PasswordWorkStats`]).
    pub fn password_work(&self) -> PasswordWorkStats {
        let w = &self.password_work;
        PasswordWorkStats { total: w.total.load(Ordering::SeqCst), peak_concurrent: w.peak.load(Ordering::SeqCst) }
    }

    /// Start a session for `user`: returns the session id (cookie value, shown once) and the session.
    pub fn create_session(&self, user: &User) -> Result<(String, Session), RegistryError> {
        let id = random_hex(32);
        let s = Session {
            user_id: user.id.clone(),
            tenant_id: user.tenant_id.clone(),
            role: user.role,
            csrf: random_hex(32),
            expires_ms: fc_core::time::now_ms() + SESSION_TTL_MS,
        };
        self.put_json(Table::Sessions, &s.tenant_id, &hex::encode(sha256(id.as_bytes())), &s, Some(s.expires_ms))?;
        Ok((id, s))
    }

    /// The live session behind a cookie value, with the user's current role.
    pub fn session(&self, id: &str) -> Result<Session, RegistryError> {
        if id.len() != 64 {
            return Err(RegistryError::Unauthenticated);
        }
        let mut s: Session = self.get_json(Table::Sessions, &hex::encode(sha256(id.as_bytes())))?.ok_or(RegistryError::Unauthenticated)?;
        if s.expires_ms < fc_core::time::now_ms() {
            return Err(RegistryError::Unauthenticated);
        }
        // Role changes take effect on the next request, not the next sign-in.
        s.role = self.get_user(&s.tenant_id, &s.user_id).map_err(|_| RegistryError::Unauthenticated)?.role;
        Ok(s)
    }

    /// End a session.
    pub fn delete_session(&self, id: &str) -> Result<(), RegistryError> {
        let key = hex::encode(sha256(id.as_bytes()));
        match self.get_json::<Session>(Table::Sessions, &key)? {
            Some(s) => self.kv.remove(Table::Sessions, &s.tenant_id, &key),
            None => Ok(()),
        }
    }

    /// Invite `email` into the tenant with `role`; returns the invitation token (shown once).
    pub fn invite(&self, tenant_id: &str, email: &str, role: Role) -> Result<(String, Invitation), RegistryError> {
        self.get_tenant(tenant_id)?;
        let token = random_hex(32);
        let key = hex::encode(sha256(token.as_bytes()));
        let inv = Invitation {
            id: format!("i_{}", random_hex(8)),
            token_sha256: key.clone(),
            tenant_id: tenant_id.into(),
            email: normalise_email(email)?,
            role,
            expires_ms: fc_core::time::now_ms() + INVITE_TTL_MS,
        };
        self.put_json(Table::Invitations, tenant_id, &key, &inv, Some(inv.expires_ms))?;
        Ok((token, inv))
    }

    /// The tenant's pending (unexpired, unused) invitations, soonest expiry first.
    pub fn list_invitations(&self, tenant_id: &str) -> Result<Vec<Invitation>, RegistryError> {
        // Rows are scoped by tenant: the scan holds only this tenant's invitations.
        let mut all: Vec<Invitation> = self.scan(Table::Invitations, tenant_id)?;
        all.sort_by_key(|i| i.expires_ms);
        Ok(all)
    }

    /// Withdraw a pending invitation of the tenant: its token stops working at once.
    pub fn withdraw_invitation(&self, tenant_id: &str, invitation_id: &str) -> Result<(), RegistryError> {
        let inv = self
            .list_invitations(tenant_id)?
            .into_iter()
            .find(|i| i.id == invitation_id)
            .ok_or_else(|| RegistryError::NotFound("invitation".into()))?;
        self.kv.remove(Table::Invitations, tenant_id, &inv.token_sha256)
    }

    /// The invitation behind a token, if valid.
    pub fn invitation(&self, token: &str) -> Result<Invitation, RegistryError> {
        let inv: Invitation = self
            .get_json(Table::Invitations, &hex::encode(sha256(token.as_bytes())))?
            .ok_or_else(|| RegistryError::NotFound("invitation".into()))?;
        if inv.expires_ms < fc_core::time::now_ms() {
            return Err(RegistryError::NotFound("invitation".into()));
        }
        Ok(inv)
    }

    /// Accept an invitation: creates the user and consumes the token.
    pub fn accept_invitation(&self, token: &str, name: &str, password: &str) -> Result<User, RegistryError> {
        let inv = self.invitation(token)?;
        let user = self.create_user(&inv.tenant_id, &inv.email, name, inv.role, password)?;
        self.kv.remove(Table::Invitations, &inv.tenant_id, &hex::encode(sha256(token.as_bytes())))?;
        Ok(user)
    }

    /// Issue an API key (viewer or operator) for machine clients; returns it and its token (shown once).
    pub fn create_api_key(&self, tenant_id: &str, name: &str, role: Role) -> Result<(ApiKey, String), RegistryError> {
        self.get_tenant(tenant_id)?;
        if role == Role::Owner {
            return Err(RegistryError::Invalid("role: API keys are viewer or operator".into()));
        }
        let id = format!("k_{}", random_hex(8));
        let secret = random_hex(32);
        let key = ApiKey {
            id: id.clone(),
            tenant_id: tenant_id.into(),
            name: validate_name("name", name)?,
            role,
            created_ms: fc_core::time::now_ms(),
            revoked_ms: None,
            secret_sha256: hex::encode(sha256(secret.as_bytes())),
        };
        self.put_json(Table::ApiKeys, tenant_id, &id, &key, None)?;
        Ok((key, format!("fck_{id}_{secret}")))
    }

    /// API keys of a tenant.
    pub fn list_api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKey>, RegistryError> {
        self.scan(Table::ApiKeys, tenant_id)
    }

    /// Revoke a key of the tenant.
    pub fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> Result<(), RegistryError> {
        let mut key: ApiKey = self
            .get_json(Table::ApiKeys, key_id)?
            .filter(|k: &ApiKey| k.tenant_id == tenant_id)
            .ok_or_else(|| RegistryError::NotFound("API key".into()))?;
        key.revoked_ms.get_or_insert(fc_core::time::now_ms());
        self.put_json(Table::ApiKeys, tenant_id, key_id, &key, None)
    }

    /// Who an API key speaks for.
    pub fn authenticate_api_key(&self, token: &str) -> Result<ApiKey, RegistryError> {
        let (id, secret) = crate::split_credential(token, "fck", "k_")?;
        let key: ApiKey = self.get_json(Table::ApiKeys, id)?.ok_or(RegistryError::Unauthenticated)?;
        if !crate::secret_matches(secret, &key.secret_sha256)? || key.revoked_ms.is_some() {
            return Err(RegistryError::Unauthenticated);
        }
        Ok(key)
    }
}

/// An argon2id hash of a random password, verified against when the e-mail is unknown.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$J8Fb6Xgc0c3Ds0Iv/VOIiMGY0Iv8a6hBm5bHgyV9mZk";

#[cfg(test)]
mod tests {
    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash() {
        // If it did not parse, unknown e-mails would be answered faster than known ones.
        assert!(argon2::PasswordHash::new(super::DUMMY_PHC).is_ok());
    }
}
