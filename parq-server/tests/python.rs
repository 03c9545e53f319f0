//! Interoperability with the Python tools integrators use: codes made by `pyotp` log in, and
//! the password hashes the server stores verify with `argon2-cffi`.

mod common;

use std::process::Command;

use common::{expect, expect_problem};
use reqwest::StatusCode;
use serde_json::json;

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs (install it, with: pip install pyotp argon2-cffi)");
    assert!(
        out.status.success(),
        "python failed (needs: pip install pyotp argon2-cffi): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyotp_codes_log_in_and_argon2_cffi_verifies_stored_hashes() {
    let s = common::start().await;
    let password = "sea view from the marina";
    let token = s.driver_with("nikos@example.cy", password).await;

    // The stored hash is a standard Argon2id PHC string that argon2-cffi verifies.
    let account = s.running.app.state().accounts.user_by_email("nikos@example.cy").await.unwrap().unwrap();
    let verify = "import sys\nfrom argon2 import PasswordHasher\nfrom argon2.exceptions import VerifyMismatchError\n\
                  ph = PasswordHasher()\ntry:\n    ph.verify(sys.argv[1], sys.argv[2]); print('ok')\n\
                  except VerifyMismatchError:\n    print('mismatch')\n";
    assert_eq!(python(verify, &[&account.password_hash, password]), "ok");
    assert_eq!(python(verify, &[&account.password_hash, "another password"]), "mismatch");

    // Enrol with a code pyotp computes from the seed (as an authenticator app would).
    let enrol = expect(s.post("/api/v1/me/mfa/totp", Some(&token), json!({})).await, StatusCode::OK).await;
    let uri = enrol["otpauth_uri"].as_str().unwrap();
    let code_now =
        "import sys, time, pyotp\nprint(pyotp.parse_uri(sys.argv[1]).at(time.time() + float(sys.argv[2])))";
    let code = python(code_now, &[uri, "0"]);
    expect(
        s.post("/api/v1/me/mfa/totp/confirm", Some(&token), json!({ "code": code })).await,
        StatusCode::OK,
    )
    .await;

    // Then log in with the next code pyotp makes; the previous one is spent.
    let login = |code: String| {
        s.post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "nikos@example.cy", "password": password, "totp_code": code }),
        )
    };
    expect_problem(login(code).await, "unauthorized").await;
    let next = python(code_now, &[uri, "30"]);
    let session = expect(login(next).await, StatusCode::OK).await;
    assert_eq!(session["user"]["mfa_enabled"], true);
    s.running.shutdown().await;
}
