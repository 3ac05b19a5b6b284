//! `factorychain service-token`: the issuer key is created once (private), the
//! public key and minted tokens verify against each other, bad input is refused.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_factorychain")).arg("service-token").args(args).output().expect("runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn minted_tokens_verify_with_the_printed_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("issuer.key");
    let key = key.to_str().unwrap();
    let (ok, public, err) = run(&["--issuer-key", key]);
    assert!(ok, "{err}");
    let verifier = fc_rpc::service_auth::Verifier::parse(&public).expect("a public key");
    let (ok, token, err) = run(&["--issuer-key", key, "--service", "ingest", "--days", "30"]);
    assert!(ok, "{err}");
    assert_eq!(verifier.verify_at(&token, fc_core::time::now_ms()).unwrap(), "ingest");
    assert_eq!(run(&["--issuer-key", key]).1, public, "the key is kept, not replaced");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o077, 0, "private");
    }
    for bad in [&["--service", "Not A Name"][..], &["--service", "ingest", "--days", "0"]] {
        let mut args = vec!["--issuer-key", key];
        args.extend_from_slice(bad);
        let (ok, out, err) = run(&args);
        assert!(!ok && out.is_empty() && err.contains("error"), "{bad:?}: {out} {err}");
    }
}
