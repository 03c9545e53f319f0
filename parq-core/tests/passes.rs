//! Passes at the gate: what opens, what stays closed, and why.

use jiff::{SignedDuration, Timestamp};
use parq_core::pass::{
    Decision, Entitlement, GatePolicy, GateState, GateVerifier, KeyId, KeySeed, PASS_TEXT_LEN, PassKeyring,
    PassNonce, Presence, PublicKeys, ReentryPolicy, Refusal, RevocationDelta, RevocationList,
    RevocationReason, Scan, ScanContext, ScanId, base45, decide,
};
use parq_core::{Error, LotId, ReservationId, ReservationState, SpotId, Window};

const GRACE: SignedDuration = SignedDuration::from_mins(15);

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A reservation for 09:00–11:00 in lot `lot`.
fn entitlement(lot: LotId) -> Entitlement {
    Entitlement {
        reservation: ReservationId::new(),
        lot,
        spot: SpotId::new(),
        window: Window::new(ts("2030-05-01T09:00:00Z"), ts("2030-05-01T11:00:00Z")).unwrap(),
    }
}

fn keyring() -> PassKeyring {
    PassKeyring::new(KeyId(1), KeySeed::from_bytes([42; 32]))
}

fn gate(keys: PublicKeys, reentry: ReentryPolicy) -> GateVerifier {
    GateVerifier::new(keys, GatePolicy { grace: GRACE, reentry })
}

struct Setup {
    ring: PassKeyring,
    lot: LotId,
    ent: Entitlement,
    text: String,
    gate: GateVerifier,
}

fn setup(reentry: ReentryPolicy) -> Setup {
    let ring = keyring();
    let lot = LotId::new();
    let ent = entitlement(lot);
    let text = ring.issue(ent).unwrap().into_text();
    let gate = gate(ring.public_keys(), reentry);
    Setup { ring, lot, ent, text, gate }
}

fn refused(r: Refusal) -> Decision {
    Decision::Refuse(r)
}

#[test]
fn a_good_pass_opens_its_lot_from_the_start_of_its_grace_to_its_end() {
    let s = setup(ReentryPolicy::NotAllowed);
    let claims = s.ring.public_keys().verify(&s.text).unwrap();
    assert_eq!(claims.entitlement, s.ent);
    assert_eq!(claims.key_id, KeyId(1));

    // The first instant of the grace before the window, and the last one after it.
    for at in ["2030-05-01T08:45:00Z", "2030-05-01T10:00:00Z", "2030-05-01T11:14:59Z"] {
        let gate = gate(s.ring.public_keys(), ReentryPolicy::NotAllowed);
        assert_eq!(gate.scan(&s.text, &Scan::entry(s.lot, ts(at))), Decision::Allow, "entry at {at}");
        assert_eq!(gate.presence(s.ent.reservation), Presence::Inside);
    }
}

#[test]
fn a_pass_is_refused_before_its_window_minus_grace() {
    let s = setup(ReentryPolicy::NotAllowed);
    let d = s.gate.scan(&s.text, &Scan::entry(s.lot, ts("2030-05-01T08:44:59Z")));
    assert_eq!(d, refused(Refusal::TooEarly));
    assert_eq!(s.gate.presence(s.ent.reservation), Presence::NotEntered, "a refusal changes nothing");
}

#[test]
fn a_pass_is_refused_from_its_window_end_plus_grace() {
    let s = setup(ReentryPolicy::NotAllowed);
    // The window is half-open, so the end plus grace is already too late.
    let d = s.gate.scan(&s.text, &Scan::entry(s.lot, ts("2030-05-01T11:15:00Z")));
    assert_eq!(d, refused(Refusal::Expired));
    assert_eq!(
        s.gate.scan(&s.text, &Scan::entry(s.lot, ts("2030-05-02T09:00:00Z"))),
        refused(Refusal::Expired)
    );
}

#[test]
fn a_pass_opens_only_its_own_lot() {
    let s = setup(ReentryPolicy::NotAllowed);
    let other = LotId::new();
    let at = ts("2030-05-01T09:30:00Z");
    assert_eq!(s.gate.scan(&s.text, &Scan::entry(other, at)), refused(Refusal::WrongLot));
    assert_eq!(s.gate.scan(&s.text, &Scan::exit(other, at)), refused(Refusal::WrongLot));
    assert_eq!(s.gate.scan(&s.text, &Scan::entry(s.lot, at)), Decision::Allow);
}

#[test]
fn a_pass_signed_by_an_unknown_key_is_refused_as_unknown_key() {
    let s = setup(ReentryPolicy::NotAllowed);
    let stranger = PassKeyring::new(KeyId(9), KeySeed::from_bytes([9; 32]));
    let forged = stranger.issue(s.ent).unwrap();
    let d = s.gate.scan(forged.text(), &Scan::entry(s.lot, ts("2030-05-01T09:30:00Z")));
    assert_eq!(d, refused(Refusal::UnknownKey));
}

#[test]
fn a_pass_signed_by_the_wrong_key_under_a_trusted_key_id_is_refused_as_invalid() {
    let s = setup(ReentryPolicy::NotAllowed);
    // Same key id as the issuer, different secret.
    let forger = PassKeyring::new(KeyId(1), KeySeed::from_bytes([43; 32]));
    let forged = forger.issue(s.ent).unwrap();
    let d = s.gate.scan(forged.text(), &Scan::entry(s.lot, ts("2030-05-01T09:30:00Z")));
    assert_eq!(d, refused(Refusal::Invalid));
    assert_eq!(s.gate.presence(s.ent.reservation), Presence::NotEntered);
}

#[test]
fn a_pass_with_its_window_stretched_is_refused_as_invalid() {
    let s = setup(ReentryPolicy::NotAllowed);
    // Flip a byte of the signed window end (offset 61..69): a still well-formed pass that
    // claims another window.
    let mut bytes = base45::decode(&s.text).unwrap();
    bytes[66] ^= 0x10;
    let tampered = base45::encode(&bytes);
    assert_eq!(tampered.len(), s.text.len());
    let d = s.gate.scan(&tampered, &Scan::entry(s.lot, ts("2030-05-01T09:30:00Z")));
    assert_eq!(d, refused(Refusal::Invalid));
}

#[test]
fn a_pass_with_any_character_changed_is_refused() {
    let s = setup(ReentryPolicy::NotAllowed);
    let at = ts("2030-05-01T09:30:00Z");
    let chars: Vec<char> = s.text.chars().collect();
    for i in 0..chars.len() {
        let mut changed = chars.clone();
        changed[i] = if changed[i] == 'A' { 'B' } else { 'A' };
        let text: String = changed.into_iter().collect();
        let d = s.gate.scan(&text, &Scan::entry(s.lot, at));
        // Characters 0..9 carry the version and key id; changing them may name a key the
        // gate does not know. Everywhere else the pass is simply not authentic.
        if i < 9 {
            assert!(matches!(d, Decision::Refuse(Refusal::Invalid | Refusal::UnknownKey)), "char {i}: {d:?}");
        } else {
            assert_eq!(d, refused(Refusal::Invalid), "char {i}");
        }
    }
    assert_eq!(s.gate.presence(s.ent.reservation), Presence::NotEntered);
}

#[test]
fn text_that_is_not_a_pass_is_refused_as_invalid() {
    let s = setup(ReentryPolicy::NotAllowed);
    let at = ts("2030-05-01T09:30:00Z");
    let truncated = &s.text[..s.text.len() - 3];
    let lower = s.text.to_lowercase();
    let longer = format!("{}AAA", s.text);
    let huge = "A".repeat(100_000);
    for text in ["", "HTTPS://EXAMPLE.COM", "00", truncated, &lower, &longer, &huge] {
        assert_eq!(s.gate.scan(text, &Scan::entry(s.lot, at)), refused(Refusal::Invalid), "{text:.40}");
    }
    // A reader's line ending is not part of the pass.
    assert_eq!(s.gate.scan(&format!("{}\r\n", s.text), &Scan::entry(s.lot, at)), Decision::Allow);
}

#[test]
fn a_cancelled_reservation_is_refused_once_the_gate_has_synced() {
    let s = setup(ReentryPolicy::NotAllowed);
    let at = ts("2030-05-01T09:30:00Z");
    let mut issuer = RevocationList::new();
    issuer.revoke(s.ent.reservation, None, RevocationReason::Cancelled, ts("2030-05-01T08:00:00Z"));

    let delta = issuer.since(s.gate.revocation_version());
    assert_eq!(s.gate.apply_revocations(&delta).unwrap(), 1);
    assert_eq!(s.gate.revocation_version(), 1);
    assert_eq!(s.gate.scan(&s.text, &Scan::entry(s.lot, at)), refused(Refusal::Revoked));
}

#[test]
fn a_replaced_pass_is_refused_and_its_replacement_opens() {
    let s = setup(ReentryPolicy::NotAllowed);
    let at = ts("2030-05-01T09:30:00Z");
    let old = s.ring.public_keys().verify(&s.text).unwrap();
    let new = s.ring.issue(s.ent).unwrap();
    assert_ne!(new.claims().nonce, old.nonce, "every pass gets its own nonce");

    let mut issuer = RevocationList::new();
    issuer.revoke(s.ent.reservation, Some(old.nonce), RevocationReason::Replaced, at);
    s.gate.apply_revocations(&issuer.since(0)).unwrap();

    assert_eq!(s.gate.scan(&s.text, &Scan::entry(s.lot, at)), refused(Refusal::Revoked));
    assert_eq!(s.gate.scan(new.text(), &Scan::entry(s.lot, at)), Decision::Allow);
}

#[test]
fn a_revoked_pass_still_lets_a_vehicle_out() {
    let s = setup(ReentryPolicy::NotAllowed);
    assert_eq!(s.gate.scan(&s.text, &Scan::entry(s.lot, ts("2030-05-01T09:30:00Z"))), Decision::Allow);
    let mut issuer = RevocationList::new();
    issuer.revoke(s.ent.reservation, None, RevocationReason::Cancelled, ts("2030-05-01T10:00:00Z"));
    s.gate.apply_revocations(&issuer.since(0)).unwrap();
    assert_eq!(s.gate.scan(&s.text, &Scan::exit(s.lot, ts("2030-05-01T12:00:00Z"))), Decision::Allow);
}

#[test]
fn a_second_vehicle_with_a_copy_of_the_pass_is_refused_while_the_first_is_inside() {
    let s = setup(ReentryPolicy::Allowed);
    let at = ts("2030-05-01T09:30:00Z");
    assert_eq!(s.gate.scan(&s.text, &Scan::entry(s.lot, at)), Decision::Allow);
    let copy = s.text.clone();
    let later = ts("2030-05-01T09:31:00Z");
    assert_eq!(s.gate.scan(&copy, &Scan::entry(s.lot, later)), refused(Refusal::AlreadyInside));
}

#[test]
fn a_replayed_reading_counts_once() {
    let s = setup(ReentryPolicy::Allowed);
    let reading = Scan::entry(s.lot, ts("2030-05-01T09:30:00Z")).with_id(ScanId([7; 16]));
    assert_eq!(s.gate.scan(&s.text, &reading), Decision::Allow);
    assert_eq!(s.gate.scan(&s.text, &reading), refused(Refusal::Replayed));
    assert_eq!(s.gate.scan(&s.text, &Scan::exit(s.lot, ts("2030-05-01T10:00:00Z"))), Decision::Allow);
    // Re-entry is allowed in this lot, yet the old reading still does not open the gate.
    assert_eq!(s.gate.scan(&s.text, &reading), refused(Refusal::Replayed));
    assert_eq!(s.gate.presence(s.ent.reservation), Presence::Left);
    // A new reading of the same pass is a real re-entry.
    let again = Scan::entry(s.lot, ts("2030-05-01T10:05:00Z")).with_id(ScanId([8; 16]));
    assert_eq!(s.gate.scan(&s.text, &again), Decision::Allow);
}

#[test]
fn entry_exit_and_a_second_entry_follow_the_reentry_rule() {
    for (policy, second_entry) in [
        (ReentryPolicy::NotAllowed, refused(Refusal::ReentryNotAllowed)),
        (ReentryPolicy::Allowed, Decision::Allow),
    ] {
        let s = setup(policy);
        let scan = |d: fn(LotId, Timestamp) -> Scan, at: &str| s.gate.scan(&s.text, &d(s.lot, ts(at)));
        assert_eq!(scan(Scan::exit, "2030-05-01T08:50:00Z"), refused(Refusal::NotInside), "{policy:?}");
        assert_eq!(scan(Scan::entry, "2030-05-01T09:00:00Z"), Decision::Allow, "{policy:?}");
        assert_eq!(scan(Scan::exit, "2030-05-01T09:40:00Z"), Decision::Allow, "{policy:?}");
        assert_eq!(scan(Scan::exit, "2030-05-01T09:41:00Z"), refused(Refusal::NotInside), "{policy:?}");
        assert_eq!(scan(Scan::entry, "2030-05-01T10:00:00Z"), second_entry, "{policy:?}");
    }
}

#[test]
fn an_overstaying_vehicle_can_still_leave() {
    let s = setup(ReentryPolicy::NotAllowed);
    assert_eq!(s.gate.scan(&s.text, &Scan::entry(s.lot, ts("2030-05-01T10:30:00Z"))), Decision::Allow);
    assert_eq!(s.gate.scan(&s.text, &Scan::exit(s.lot, ts("2030-05-01T23:00:00Z"))), Decision::Allow);
}

#[test]
fn a_rotated_key_still_verifies_passes_issued_before_and_a_retired_one_does_not() {
    let mut ring = keyring();
    let lot = LotId::new();
    let old = ring.issue(entitlement(lot)).unwrap();
    ring.rotate(KeyId(2)).unwrap();
    let new = ring.issue(entitlement(lot)).unwrap();
    assert_eq!(new.claims().key_id, KeyId(2));

    // The gate learns the keys through configuration, as it would in the field.
    let keys: PublicKeys =
        serde_json::from_str(&serde_json::to_string(&ring.public_keys()).unwrap()).unwrap();
    let at = ts("2030-05-01T09:30:00Z");
    let g = gate(keys, ReentryPolicy::NotAllowed);
    assert_eq!(g.scan(old.text(), &Scan::entry(lot, at)), Decision::Allow);
    assert_eq!(g.scan(new.text(), &Scan::entry(lot, at)), Decision::Allow);

    assert!(ring.retire(KeyId(1)).unwrap());
    let g = gate(ring.public_keys(), ReentryPolicy::NotAllowed);
    assert_eq!(g.scan(old.text(), &Scan::entry(lot, at)), refused(Refusal::UnknownKey));
    assert_eq!(g.scan(new.text(), &Scan::entry(lot, at)), Decision::Allow);
}

#[test]
fn a_keyring_restored_from_configuration_signs_passes_its_gates_accept() {
    let ring = keyring();
    let json = serde_json::to_string(&ring).unwrap();
    let restored: PassKeyring = serde_json::from_str(&json).unwrap();
    let lot = LotId::new();
    let pass = restored.issue(entitlement(lot)).unwrap();
    let g = gate(ring.public_keys(), ReentryPolicy::NotAllowed);
    assert_eq!(g.scan(pass.text(), &Scan::entry(lot, ts("2030-05-01T09:00:00Z"))), Decision::Allow);

    let bad_seed = json.replace(&KeySeed::from_bytes([42; 32]).to_hex(), "not hex");
    assert!(serde_json::from_str::<PassKeyring>(&bad_seed).is_err());
}

#[test]
fn revocations_sync_incrementally_and_a_gate_keeps_the_highest_version() {
    let mut issuer = RevocationList::new();
    let at = ts("2030-05-01T08:00:00Z");
    let (a, b, c) = (ReservationId::new(), ReservationId::new(), ReservationId::new());
    let first = issuer.revoke(a, None, RevocationReason::Cancelled, at);
    assert_eq!(first.version, 1);
    // Revoking again is harmless and does not bump the version.
    assert_eq!(issuer.revoke(a, None, RevocationReason::Cancelled, at), first);
    issuer.revoke(b, Some(PassNonce([1; 16])), RevocationReason::Replaced, at);
    assert_eq!(issuer.version(), 2);

    let mut gate = RevocationList::new();
    assert_eq!(gate.apply(&issuer.since(0)).unwrap(), 2);
    assert_eq!(gate.version(), 2);
    assert_eq!(issuer.since(2).revocations, []);

    issuer.revoke(c, None, RevocationReason::Cancelled, at);
    let delta = issuer.since(gate.version());
    assert_eq!((delta.from, delta.to), (2, 3));
    assert_eq!(delta.revocations.iter().map(|r| r.reservation).collect::<Vec<_>>(), [c]);
    assert_eq!(gate.apply(&delta).unwrap(), 1);
    // The same delta again, or an older one, changes nothing.
    assert_eq!(gate.apply(&delta).unwrap(), 0);
    assert_eq!(gate.apply(&issuer.since(0)).unwrap(), 0);
    assert_eq!(gate.version(), 3);
    assert_eq!(gate, issuer);

    // A delta that would skip versions is refused and changes nothing.
    let mut fresh = RevocationList::new();
    let err = fresh.apply(&issuer.since(2)).unwrap_err();
    assert_eq!(err, parq_core::pass::PassError::RevocationGap { have: 0, from: 2 });
    assert!(matches!(Error::from(err), Error::Invalid { field: "revocations", .. }));
    let mut holey = issuer.since(0);
    holey.revocations.remove(1);
    assert!(fresh.apply(&holey).is_err());
    assert_eq!(fresh.version(), 0);

    // The list travels as JSON between issuer and gate.
    let json = serde_json::to_string(&issuer.since(1)).unwrap();
    let back: RevocationDelta = serde_json::from_str(&json).unwrap();
    assert_eq!(back, issuer.since(1));
    assert!(json.contains("\"reason\":\"replaced\""), "{json}");
}

#[test]
fn the_gate_remembers_who_is_inside_across_a_restart() {
    let s = setup(ReentryPolicy::NotAllowed);
    assert_eq!(s.gate.scan(&s.text, &Scan::entry(s.lot, ts("2030-05-01T09:30:00Z"))), Decision::Allow);
    let saved = serde_json::to_string(&s.gate.state()).unwrap();

    let state: GateState = serde_json::from_str(&saved).unwrap();
    let policy = GatePolicy { grace: GRACE, reentry: ReentryPolicy::NotAllowed };
    let restarted = GateVerifier::with_state(s.ring.public_keys(), policy, state);
    let at = ts("2030-05-01T09:45:00Z");
    assert_eq!(restarted.scan(&s.text, &Scan::entry(s.lot, at)), refused(Refusal::AlreadyInside));
    assert_eq!(restarted.scan(&s.text, &Scan::exit(s.lot, at)), Decision::Allow);
}

#[test]
fn pruning_forgets_only_visits_that_can_no_longer_matter() {
    let ring = keyring();
    let lot = LotId::new();
    let (inside, left) = (entitlement(lot), entitlement(lot));
    let g = gate(ring.public_keys(), ReentryPolicy::NotAllowed);
    let at = ts("2030-05-01T09:30:00Z");
    assert!(g.scan(ring.issue(inside).unwrap().text(), &Scan::entry(lot, at)).is_allowed());
    let left_text = ring.issue(left).unwrap().into_text();
    assert!(g.scan(&left_text, &Scan::entry(lot, at)).is_allowed());
    assert!(g.scan(&left_text, &Scan::exit(lot, at)).is_allowed());

    // Still within the grace: nothing may be forgotten, or a second entry would be allowed.
    assert_eq!(g.prune(ts("2030-05-01T11:14:59Z")), 0);
    assert_eq!(g.prune(ts("2030-05-01T11:15:00Z")), 1);
    assert_eq!(g.presence(inside.reservation), Presence::Inside);
    assert_eq!(g.presence(left.reservation), Presence::NotEntered);
}

#[test]
fn online_check_in_uses_the_same_rules_with_the_reservation_state() {
    let lot = LotId::new();
    let ent = entitlement(lot);
    let scan = Scan::entry(lot, ts("2030-05-01T09:30:00Z"));
    let with_state = |state| {
        let mut ctx = ScanContext::new(ent, GRACE);
        ctx.reservation_state = Some(state);
        decide(&scan, &ctx)
    };
    use ReservationState::*;
    assert_eq!(with_state(Confirmed), Decision::Allow);
    for unpaid in [Held, PendingPayment, Expired] {
        assert_eq!(with_state(unpaid), refused(Refusal::NotPaid), "{unpaid}");
    }
    assert_eq!(with_state(Cancelled), refused(Refusal::Revoked));
    assert_eq!(with_state(NoShow), refused(Refusal::Expired));

    // Presence from the engine's sessions.
    let mut ctx = ScanContext::new(ent, GRACE);
    ctx.reservation_state = Some(CheckedIn);
    ctx.presence = Presence::Inside;
    assert_eq!(decide(&scan, &ctx), refused(Refusal::AlreadyInside));
    assert_eq!(decide(&Scan::exit(lot, scan.at), &ctx), Decision::Allow);
}

#[test]
fn refusals_serialise_in_snake_case() {
    assert_eq!(serde_json::to_value(Refusal::ReentryNotAllowed).unwrap(), "reentry_not_allowed");
    assert_eq!(serde_json::to_value(Refusal::UnknownKey).unwrap(), "unknown_key");
    assert_eq!(Refusal::WrongLot.to_string(), "wrong_lot");
    assert_eq!(
        serde_json::to_value(Decision::Refuse(Refusal::TooEarly)).unwrap(),
        serde_json::json!({ "decision": "refuse", "reason": "too_early" })
    );
    assert_eq!(serde_json::to_value(Decision::Allow).unwrap(), serde_json::json!({ "decision": "allow" }));
}

#[test]
fn a_pass_is_short_alphanumeric_text() {
    let s = setup(ReentryPolicy::NotAllowed);
    assert_eq!(s.text.len(), PASS_TEXT_LEN);
    assert_eq!(PASS_TEXT_LEN, 224);
    assert!(s.text.bytes().all(|b| base45::ALPHABET.contains(&b)), "{}", s.text);
}

#[test]
fn a_window_with_a_fraction_of_a_second_cannot_be_issued() {
    let ring = keyring();
    let mut ent = entitlement(LotId::new());
    ent.window = Window::new(ts("2030-05-01T09:00:00.5Z"), ts("2030-05-01T11:00:00Z")).unwrap();
    assert!(matches!(ring.issue(ent), Err(Error::Invalid { field: "window", .. })));
}
