//! The demo tenant of `factorychain up --demo` (both shapes): a growth tenant
//! with an owner login and one device, created once and kept in a file so a
//! restart shows the same login. The file holds the password and token in
//! clear on purpose (mode 0600): it is a throw-away tenant on a local machine.

use fc_registry::Registry;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The demo's identities.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Demo {
    /// Tenant id.
    pub tenant_id: String,
    /// Device id.
    pub device_id: String,
    /// The device's token.
    pub token: String,
    /// The owner's e-mail.
    pub email: String,
    /// The owner's password.
    pub password: String,
}

/// The demo of `path`, or a new one written there when the file is missing or its device no longer authenticates.
pub fn ensure(registry: &Registry, path: &Path) -> Result<Demo, String> {
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(d) = serde_json::from_str::<Demo>(&text)
        && registry.authenticate_device(&d.token).is_ok()
    {
        return Ok(d);
    }
    let password = fc_registry::random_hex(8);
    let email = format!("demo-{}@factorychain.local", fc_registry::random_hex(3));
    let (t, _) = registry.sign_up("Demo Steel Works", "growth", &email, "Demo Owner", &password).map_err(|e| e.to_string())?;
    let (dev, token) = registry.create_device(&t.id, "demo gateway").map_err(|e| e.to_string())?;
    let d = Demo { tenant_id: t.id, device_id: dev.id, token, email, password };
    let text = serde_json::to_string_pretty(&d).map_err(|e| e.to_string())?;
    fc_core::fsutil::replace_private(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(d)
}
