//! The conformance suite every registry backend passes: the embedded one in
//! every test run, ScyllaDB when `FC_SCYLLA_NODES` names a cluster
//! (`tests/scylla_registry.rs`). Failures panic with what differed.
//!
//! Keys and e-mails carry `run` so that a cluster keeping earlier runs' rows
//! does not disturb a new run.

use crate::kv::{KvStore, Table};
use crate::{Registry, RegistryError, Role};

/// Row-level behaviour of a backend.
pub fn kv_suite(kv: &dyn KvStore, run: &str) {
    let scope_a = format!("t_a{run}");
    let scope_b = format!("t_b{run}");
    let k = |s: &str| format!("{run}{s}");
    assert_eq!(kv.get(Table::Devices, &k("missing")).unwrap(), None);
    kv.put(Table::Devices, &scope_a, &k("d1"), b"one", None).unwrap();
    kv.put(Table::Devices, &scope_a, &k("d2"), b"two", None).unwrap();
    kv.put(Table::Devices, &scope_b, &k("d3"), b"three", None).unwrap();
    assert_eq!(kv.get(Table::Devices, &k("d1")).unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(kv.get(Table::Users, &k("d1")).unwrap(), None, "tables are separate");
    assert_eq!(kv.list(Table::Devices, &scope_a).unwrap(), vec![b"one".to_vec(), b"two".to_vec()], "list is by scope, in key order");
    assert_eq!(kv.list(Table::Devices, &scope_b).unwrap(), vec![b"three".to_vec()]);
    // overwrite
    kv.put(Table::Devices, &scope_a, &k("d1"), b"uno", None).unwrap();
    assert_eq!(kv.get(Table::Devices, &k("d1")).unwrap().as_deref(), Some(&b"uno"[..]));
    assert_eq!(kv.list(Table::Devices, &scope_a).unwrap().len(), 2);
    // insert_new: the first wins, later ones see it
    assert!(kv.insert_new(Table::Emails, "", &k("a@x.example"), b"u1").unwrap());
    assert!(!kv.insert_new(Table::Emails, "", &k("a@x.example"), b"u2").unwrap());
    assert_eq!(kv.get(Table::Emails, &k("a@x.example")).unwrap().as_deref(), Some(&b"u1"[..]));
    // remove
    kv.remove(Table::Devices, &scope_a, &k("d2")).unwrap();
    kv.remove(Table::Devices, &scope_a, &k("never")).unwrap();
    assert_eq!(kv.get(Table::Devices, &k("d2")).unwrap(), None);
    assert_eq!(kv.list(Table::Devices, &scope_a).unwrap(), vec![b"uno".to_vec()]);
    kv.remove(Table::Emails, "", &k("a@x.example")).unwrap();
    assert!(kv.insert_new(Table::Emails, "", &k("a@x.example"), b"u3").unwrap(), "a removed key can be inserted again");
    // expiry: an expired row is invisible at once, a live one is kept
    let now = fc_core::time::now_ms();
    kv.put(Table::Sessions, &scope_a, &k("old"), b"gone", Some(now - 1)).unwrap();
    kv.put(Table::Sessions, &scope_a, &k("live"), b"here", Some(now + 3_600_000)).unwrap();
    assert_eq!(kv.get(Table::Sessions, &k("old")).unwrap(), None);
    assert_eq!(kv.list(Table::Sessions, &scope_a).unwrap(), vec![b"here".to_vec()]);
    kv.prune_expired(now).unwrap();
    assert_eq!(kv.get(Table::Sessions, &k("live")).unwrap().as_deref(), Some(&b"here"[..]));
    assert_eq!(kv.list(Table::Sessions, &scope_a).unwrap(), vec![b"here".to_vec()]);
}

/// Registry behaviour on top of a backend: tenancy, credentials, identity, quotas.
pub fn registry_suite(r: &Registry, run: &str) {
    let email = |s: &str| format!("{s}.{run}@acme.example");
    let a = r.create_tenant("Acme Metal", "starter").unwrap();
    let b = r.create_tenant("Busan Plastics", "growth").unwrap();
    assert_eq!(r.get_tenant(&a.id).unwrap(), a);
    let listed = r.list_tenants().unwrap();
    assert!(listed.contains(&a) && listed.contains(&b));
    // devices and tokens
    let (dev, token) = r.create_device(&a.id, "press line 1").unwrap();
    assert_eq!(&*r.authenticate_device(&token).unwrap().device_id, dev.id.as_str());
    assert!(matches!(r.get_device(&b.id, &dev.id), Err(RegistryError::NotFound(_))), "another tenant's device is not found");
    assert_eq!(r.list_devices(&a.id).unwrap(), vec![dev.clone()]);
    assert!(r.list_devices(&b.id).unwrap().is_empty());
    let (_, rotated) = r.rotate_device_token(&a.id, &dev.id).unwrap();
    assert!(r.authenticate_device(&token).is_err());
    r.revoke_device(&a.id, &dev.id).unwrap();
    assert!(r.authenticate_device(&rotated).is_err());
    // users: unique e-mail across tenants, login, sessions, roles
    let owner = r.create_user(&a.id, &email("kim"), "Kim", Role::Owner, "correct horse battery").unwrap();
    assert!(matches!(
        r.create_user(&b.id, &email("kim"), "Kim", Role::Owner, "correct horse battery"),
        Err(RegistryError::AlreadyExists(_))
    ));
    assert_eq!(r.login(&email("kim"), "correct horse battery").unwrap().id, owner.id);
    assert!(r.login(&email("kim"), "wrong password!!").is_err());
    let (sid, _) = r.create_session(&owner).unwrap();
    assert_eq!(r.session(&sid).unwrap().tenant_id, a.id);
    r.delete_session(&sid).unwrap();
    assert!(r.session(&sid).is_err());
    // invitations: listed, withdrawn, accepted once
    let (t1, i1) = r.invite(&a.id, &email("lee"), Role::Operator).unwrap();
    let (t2, i2) = r.invite(&a.id, &email("park"), Role::Viewer).unwrap();
    let ids: Vec<String> = r.list_invitations(&a.id).unwrap().into_iter().map(|i| i.id).collect();
    assert!(ids.contains(&i1.id) && ids.contains(&i2.id));
    assert!(r.list_invitations(&b.id).unwrap().is_empty(), "invitations are per tenant");
    assert!(matches!(r.withdraw_invitation(&b.id, &i1.id), Err(RegistryError::NotFound(_))));
    r.withdraw_invitation(&a.id, &i1.id).unwrap();
    assert!(r.invitation(&t1).is_err(), "a withdrawn invitation stops working");
    let lee = r.accept_invitation(&t2, "Park", "another long password").unwrap();
    assert_eq!(lee.role, Role::Viewer);
    assert!(r.accept_invitation(&t2, "Park", "another long password").is_err());
    assert!(r.list_invitations(&a.id).unwrap().is_empty());
    // API keys
    let (key, secret) = r.create_api_key(&a.id, "erp", Role::Viewer).unwrap();
    assert_eq!(r.authenticate_api_key(&secret).unwrap().id, key.id);
    assert!(matches!(r.revoke_api_key(&b.id, &key.id), Err(RegistryError::NotFound(_))));
    r.revoke_api_key(&a.id, &key.id).unwrap();
    assert!(r.authenticate_api_key(&secret).is_err());
    // partnerships: both sides see them, membership needs acceptance
    r.request_partner(&a.id, &b.id).unwrap();
    assert!(!r.is_network_member(&a.id, &b.id).unwrap());
    r.accept_partner(&b.id, &a.id).unwrap();
    assert!(r.is_network_member(&a.id, &b.id).unwrap());
    assert_eq!(r.suppliers(&a.id).unwrap().len(), 1);
    assert_eq!(r.buyers(&b.id).unwrap()[0].buyer_id, a.id);
    r.end_partnership(&b.id, &a.id).unwrap();
    assert!(r.suppliers(&a.id).unwrap().is_empty() && r.buyers(&b.id).unwrap().is_empty());
    assert!(!r.share_network(&a.id, &b.id).unwrap());
    // settlement profiles: per tenant, key and bank kept apart
    assert_eq!(r.org_profile(&a.id).unwrap(), crate::OrgProfile::default());
    r.set_org_key(&a.id, "age1example").unwrap();
    let bank = crate::BankAccount {
        holder: "A".into(),
        account_kind: crate::AccountKind::Domestic,
        account: "123-45".into(),
        bank_kind: crate::BankKind::BankCode,
        bank: "004".into(),
    };
    let p = r.set_org_bank(&a.id, bank.clone()).unwrap();
    assert_eq!((p.age_recipient.as_deref(), p.bank.as_ref()), (Some("age1example"), Some(&bank)));
    assert_eq!(r.org_profile(&a.id).unwrap(), p);
    assert_eq!(r.org_profile(&b.id).unwrap(), crate::OrgProfile::default(), "one tenant's profile is not another's");
    assert!(matches!(r.org_profile("t_ffffffffffffffff"), Err(RegistryError::NotFound(_))));
    r.prune_expired().unwrap();
}
