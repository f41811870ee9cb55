//! Every case of the "Bad input" and "Time and keys" lists in
//! `../shared/notes/ota.md`: each bundle or announcement is refused with
//! its reason, and neither slot nor the environment changes. Bundles are
//! installed through the real install path into file-backed slots.
#![allow(clippy::unwrap_used)]

mod common;

use common::{CHUNK, Camera, DAY, NOW, SLOT_BYTES};
use ota::agent::{self, AgentConfig, Broker, Evaluation};
use ota::announce::{Announcement, Verdict};
use ota::bundle::{self, MAGIC};
use ota::install::Expect;
use ota::journal::Journal;
use ota::manifest::{Component, Digest, Image, Manifest};
use ota::trust::{Delegation, Role, Root, SecretKey, Signed, sign};
use sha2::Digest as _;

/// A bundle taken apart: its signed header and its payload bytes.
fn split(bytes: &[u8]) -> (Signed, Vec<u8>) {
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[12..12 + len]).unwrap();
    (header, bytes[12 + len..].to_vec())
}

fn join(header: &Signed, payload: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(header).unwrap();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(payload);
    out
}

fn manifest_of(s: &Signed) -> Manifest {
    serde_json::from_str(&s.payload).unwrap()
}

/// Re-sign an edited manifest with `key` (as a manifest signer).
fn resign(m: &Manifest, key: &SecretKey) -> Signed {
    sign(serde_json::to_string(m).unwrap(), Role::Manifest, &[key])
}

/// An image described by hand, for manifests the tools would refuse to make.
fn image_for(data: &[u8], c: Component, name: &str) -> Image {
    Image {
        name: name.into(),
        component: c,
        length: data.len() as u64,
        sha256: Digest(sha2::Sha256::digest(data).into()),
        chunk_size: CHUNK,
        chunks: data
            .chunks(CHUNK as usize)
            .map(|c| Digest(sha2::Sha256::digest(c).into()))
            .collect(),
    }
}

fn good(cam: &Camera) -> Vec<u8> {
    std::fs::read(cam.bundle("good.bundle", "2.0.0", 5, Component::Rootfs)).unwrap()
}

struct Case {
    name: &'static str,
    /// Prepare the camera (rotate roots, move the clock) and make the bundle.
    make: fn(&mut Camera) -> (Vec<u8>, u64),
    code: &'static str,
    says: &'static str,
    /// Refused before the first write, so the inactive slot is untouched
    /// too (a bad chunk mid-stream may leave verified chunks before it in
    /// the inactive slot, which is never marked pending).
    before_write: bool,
}

fn rotate(cam: &mut Camera, edit: impl FnOnce(&mut Root)) {
    let mut next = cam.trust.root().next();
    next.issued = NOW;
    edit(&mut next);
    let s = sign(next.to_payload(), Role::Root, &[&cam.keys.root]);
    cam.trust.update_root(&s, NOW).unwrap();
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "signature bytes altered",
            make: |cam| {
                let (mut h, p) = split(&good(cam));
                let mut sig = base64_decode(&h.signatures[0].sig);
                sig[10] ^= 1;
                h.signatures[0].sig = base64_encode(&sig);
                (join(&h, &p), NOW)
            },
            code: "bad-signature",
            says: "signature",
            before_write: true,
        },
        Case {
            name: "signature truncated",
            make: |cam| {
                let (mut h, p) = split(&good(cam));
                let sig = base64_decode(&h.signatures[0].sig);
                h.signatures[0].sig = base64_encode(&sig[..40]);
                (join(&h, &p), NOW)
            },
            code: "bad-signature",
            says: "signature",
            before_write: true,
        },
        Case {
            name: "no signature at all",
            make: |cam| {
                let (mut h, p) = split(&good(cam));
                h.signatures.clear();
                (join(&h, &p), NOW)
            },
            code: "bad-signature",
            says: "manifest",
            before_write: true,
        },
        Case {
            name: "signed by an unknown key",
            make: |cam| {
                let (h, p) = split(&good(cam));
                (join(&resign(&manifest_of(&h), &cam.keys.stranger), &p), NOW)
            },
            code: "bad-signature",
            says: "unknown",
            before_write: true,
        },
        Case {
            name: "manifest payload edited after signing",
            make: |cam| {
                let (mut h, p) = split(&good(cam));
                h.payload = h.payload.replace("\"2.0.0\"", "\"2.0.1\"");
                (join(&h, &p), NOW)
            },
            code: "bad-signature",
            says: "signature",
            before_write: true,
        },
        Case {
            name: "manifest signed with the announcement key (wrong role)",
            make: |cam| {
                let (h, p) = split(&good(cam));
                let s = resign(&manifest_of(&h), &cam.keys.announcer);
                (join(&s, &p), NOW)
            },
            code: "bad-signature",
            says: "role",
            before_write: true,
        },
        Case {
            name: "manifest signed by the root key itself (not delegated)",
            make: |cam| {
                let (h, p) = split(&good(cam));
                let s = resign(&manifest_of(&h), &cam.keys.root);
                (join(&s, &p), NOW)
            },
            code: "bad-signature",
            says: "manifest",
            before_write: true,
        },
        Case {
            name: "root signature over the manifest bytes (domain separation)",
            make: |cam| {
                let (h, p) = split(&good(cam));
                let s = sign(h.payload.clone(), Role::Root, &[&cam.keys.signer]);
                (join(&s, &p), NOW)
            },
            code: "bad-signature",
            says: "signature",
            before_write: true,
        },
        Case {
            name: "valid signature, payload of another size (wrong hash)",
            make: |cam| {
                let (h, mut p) = split(&good(cam));
                for b in &mut p[..CHUNK as usize] {
                    *b = b.wrapping_add(1);
                }
                (join(&h, &p), NOW)
            },
            code: "hash-mismatch",
            says: "chunk 0",
            before_write: true,
        },
        Case {
            name: "one bit flipped mid-stream",
            make: |cam| {
                let (h, mut p) = split(&good(cam));
                p[3 * CHUNK as usize + 17] ^= 0x10;
                (join(&h, &p), NOW)
            },
            code: "hash-mismatch",
            says: "chunk 3",
            before_write: false,
        },
        Case {
            name: "mix and match: manifest of 2.0.0, payload of 2.0.1",
            make: |cam| {
                let (h, _) = split(&good(cam));
                let other =
                    std::fs::read(cam.bundle("other.bundle", "2.0.1", 6, Component::Rootfs))
                        .unwrap();
                let (_, p) = split(&other);
                (join(&h, &p), NOW)
            },
            code: "hash-mismatch",
            says: "chunk 0",
            before_write: true,
        },
        Case {
            name: "chunks right, whole-image sha256 wrong (caught at read-back)",
            make: |cam| {
                let (h, p) = split(&good(cam));
                let mut m = manifest_of(&h);
                m.images[0].sha256 = Digest([7; 32]);
                (join(&resign(&m, &cam.keys.signer), &p), NOW)
            },
            code: "read-back",
            says: "reads back sha256",
            before_write: false,
        },
        Case {
            name: "wrong board",
            make: |cam| {
                let (h, p) = split(&good(cam));
                let mut m = manifest_of(&h);
                m.compatible = vec!["rv1106".into()];
                (join(&resign(&m, &cam.keys.signer), &p), NOW)
            },
            code: "wrong-board",
            says: "rk3588",
            before_write: true,
        },
        Case {
            name: "lower security counter (downgrade)",
            make: |cam| {
                set_counter(cam, 9);
                (good(cam), NOW)
            },
            code: "downgrade",
            says: "below this camera's 9",
            before_write: true,
        },
        Case {
            name: "image larger than the slot",
            make: |cam| {
                let img = cam.image("big.img", SLOT_BYTES + 1, 3);
                let out = cam.path("big.bundle");
                bundle::create(
                    &out,
                    &cam.release("3.0", 5),
                    &[(Component::App, &img)],
                    &[&cam.keys.signer],
                )
                .unwrap();
                (std::fs::read(out).unwrap(), NOW)
            },
            code: "too-large",
            says: "does not fit",
            before_write: true,
        },
        Case {
            name: "endless data after the last image",
            make: |cam| {
                let mut b = good(cam);
                b.extend(std::iter::repeat_n(0u8, 5 << 20));
                (b, NOW)
            },
            code: "trailing-data",
            says: "after its last image",
            before_write: false,
        },
        Case {
            name: "payload shorter than the manifest says (truncated)",
            make: |cam| {
                let mut b = good(cam);
                b.truncate(b.len() - 1000);
                (b, NOW)
            },
            code: "truncated",
            says: "ends after",
            before_write: false,
        },
        Case {
            name: "length in the manifest larger than the payload",
            make: |cam| {
                let (h, mut p) = split(&good(cam));
                let mut m = manifest_of(&h);
                let extra = vec![7u8; 1000];
                let mut data = p.clone();
                data.extend_from_slice(&extra);
                m.images[0] = image_for(&data, Component::Rootfs, "rootfs.img");
                p.truncate(p.len());
                (join(&resign(&m, &cam.keys.signer), &p), NOW)
            },
            code: "truncated",
            says: "ends after",
            before_write: false,
        },
        Case {
            name: "path traversal in an image name",
            make: |cam| {
                let (h, p) = split(&good(cam));
                let mut m = manifest_of(&h);
                m.images[0].name = "../../boot/zImage".into();
                (join(&resign(&m, &cam.keys.signer), &p), NOW)
            },
            code: "bad-manifest",
            says: "not a plain file name",
            before_write: true,
        },
        Case {
            name: "two images for the same component",
            make: |cam| {
                let (h, p) = split(&good(cam));
                let mut m = manifest_of(&h);
                m.images.push(m.images[0].clone());
                let mut pp = p.clone();
                pp.extend_from_slice(&p);
                (join(&resign(&m, &cam.keys.signer), &pp), NOW)
            },
            code: "bad-manifest",
            says: "a second rootfs image",
            before_write: true,
        },
        Case {
            name: "chunk list does not cover the length",
            make: |cam| {
                let (h, p) = split(&good(cam));
                let mut m = manifest_of(&h);
                m.images[0].chunks.pop();
                (join(&resign(&m, &cam.keys.signer), &p), NOW)
            },
            code: "bad-manifest",
            says: "hashes",
            before_write: true,
        },
        Case {
            name: "unknown field in the signed manifest",
            make: |cam| {
                let (h, p) = split(&good(cam));
                let text = h
                    .payload
                    .replace("\"version\"", "\"post_install\":\"rm -rf /\",\"version\"");
                let s = sign(text, Role::Manifest, &[&cam.keys.signer]);
                (join(&s, &p), NOW)
            },
            code: "bad-manifest",
            says: "post_install",
            before_write: true,
        },
        Case {
            name: "signed document of another type (announcement as manifest)",
            make: |cam| {
                let (_, p) = split(&good(cam));
                let s = sign(
                    announcement(cam).to_payload(),
                    Role::Manifest,
                    &[&cam.keys.signer],
                );
                (join(&s, &p), NOW)
            },
            code: "bad-manifest",
            says: "unknown field",
            before_write: true,
        },
        Case {
            name: "not a bundle (bad magic)",
            make: |cam| {
                let mut b = good(cam);
                b[0] = b'X';
                (b, NOW)
            },
            code: "bad-bundle",
            says: "magic",
            before_write: true,
        },
        Case {
            name: "header length over the limit",
            make: |cam| {
                let mut b = good(cam);
                b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
                (b, NOW)
            },
            code: "bad-bundle",
            says: "limit",
            before_write: true,
        },
        Case {
            name: "header is not JSON",
            make: |cam| {
                let mut b = good(cam);
                b[12] = b'#';
                (b, NOW)
            },
            code: "bad-bundle",
            says: "not a signed document",
            before_write: true,
        },
        Case {
            name: "file ends inside the header",
            make: |cam| {
                let mut b = good(cam);
                b.truncate(40);
                (b, NOW)
            },
            code: "bad-bundle",
            says: "inside its header",
            before_write: true,
        },
        Case {
            name: "signer key revoked by a later root",
            make: |cam| {
                let id = cam.keys.signer.key_id();
                rotate(cam, |r| {
                    r.signers.retain(|d| d.key.key_id() != id);
                    r.revoked.push(id);
                });
                (good(cam), NOW)
            },
            code: "bad-signature",
            says: "revoked",
            before_write: true,
        },
        Case {
            name: "signer delegation expired",
            make: |cam| {
                let key = cam.keys.signer.public_key();
                rotate(cam, |r| {
                    for d in &mut r.signers {
                        if d.key == key {
                            d.expires = NOW - 1;
                        }
                    }
                });
                (good(cam), NOW)
            },
            code: "bad-signature",
            says: "expired",
            before_write: true,
        },
        Case {
            name: "old signing key after a rotation that dropped it",
            make: |cam| {
                let new = SecretKey::from_bytes(&[4; 32]);
                let old = cam.keys.signer.key_id();
                let newpub = new.public_key();
                rotate(cam, |r| {
                    r.signers.retain(|d| d.key.key_id() != old);
                    r.signers.push(Delegation {
                        key: newpub,
                        roles: vec![Role::Manifest],
                        expires: NOW + DAY,
                        note: None,
                    });
                });
                (good(cam), NOW)
            },
            code: "bad-signature",
            says: "unknown",
            before_write: true,
        },
        Case {
            name: "camera clock in the future (2099): root looks expired",
            make: |cam| (good(cam), 4_070_908_800),
            code: "bad-signature",
            says: "expired",
            before_write: true,
        },
        Case {
            name: "root expired while the camera sat on a shelf",
            make: |cam| (good(cam), NOW + 3651 * DAY),
            code: "bad-signature",
            says: "expired",
            before_write: true,
        },
        Case {
            name: "clock stepped back to 1970 after the delegation expired",
            make: |cam| {
                // The camera once saw a signed time after the signer's
                // delegation ended; a clock at 1970 must not revive it.
                let key = cam.keys.signer.public_key();
                rotate(cam, |r| {
                    for d in &mut r.signers {
                        if d.key == key {
                            d.expires = NOW + DAY;
                        }
                    }
                });
                cam.trust.observe_signed_time(NOW + 2 * DAY).unwrap();
                (good(cam), 0)
            },
            code: "bad-signature",
            says: "expired",
            before_write: true,
        },
    ]
}

fn set_counter(cam: &Camera, counter: u64) {
    let cur = cam.layout.env.read().unwrap();
    let mut v = cur.vars.clone();
    v.insert(ota::boot::COUNTER.into(), counter.to_string());
    cam.layout.env.write(Some(&cur), &v).unwrap();
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn running_slots(cam: &Camera) -> Vec<std::path::PathBuf> {
    cam.layout.slots.values().map(|s| s[0].clone()).collect()
}

#[test]
fn every_bad_bundle_is_refused_with_its_reason_and_changes_nothing() {
    let cases = cases();
    let mut refused = 0;
    for case in &cases {
        let mut cam = Camera::new();
        let (bytes, clock) = (case.make)(&mut cam);
        let path = cam.path("case.bundle");
        std::fs::write(&path, &bytes).unwrap();
        let before = cam.snapshot();
        let vars_before = cam.vars();
        let mut f = std::fs::File::open(&path).unwrap();
        let never = std::sync::atomic::AtomicBool::new(false);
        let r = ota::install::install(
            &mut f,
            &cam.trust,
            &cam.layout,
            clock,
            None,
            &mut |_, _| {},
            &never,
        );
        let e = match r {
            Ok(i) => panic!("case {:?} was installed: {:?}", case.name, i.targets),
            Err(e) => e,
        };
        let msg = e.to_string();
        assert_eq!(e.code(), case.code, "case {:?}: {msg}", case.name);
        assert!(
            msg.contains(case.says),
            "case {:?}: {msg:?} does not say {:?}",
            case.name,
            case.says
        );
        let after = cam.snapshot();
        assert_eq!(
            cam.vars(),
            vars_before,
            "case {:?} changed the environment",
            case.name
        );
        for (p, h) in &before {
            let is_env = cam.layout.env.copies.iter().any(|c| &c.path == p);
            let is_running = running_slots(&cam).contains(p);
            if is_env || is_running || case.before_write {
                assert_eq!(&after[p], h, "case {:?} changed {}", case.name, p.display());
            }
        }
        refused += 1;
        println!("refused: {:<60} {}", case.name, msg);
    }
    println!("{refused} bad bundles refused, slots and environment unchanged");
    assert!(refused >= 30, "{refused}");
}

#[test]
fn a_good_bundle_passes_where_the_bad_ones_failed() {
    // The control: the same camera and bundle, untampered, installs.
    let cam = Camera::new();
    let b = cam.bundle("good.bundle", "2.0.0", 5, Component::Rootfs);
    let done = cam.install(&b).unwrap();
    assert_eq!(done.targets, vec![(Component::Rootfs, ota::boot::Slot::B)]);
    assert_eq!(cam.vars()["ota_rootfs_pending"], "B");
    // The slot's version, from the signed manifest, for `ota select`.
    assert_eq!(cam.vars()["ota_rootfs_version_B"], "2.0.0");
    // Clock at 1970: no "not yet valid", the trusted time is used.
    let cam = Camera::new();
    let mut f = std::fs::File::open(cam.bundle("g.bundle", "2.0.0", 5, Component::App)).unwrap();
    let never = std::sync::atomic::AtomicBool::new(false);
    ota::install::install(
        &mut f,
        &cam.trust,
        &cam.layout,
        0,
        None,
        &mut |_, _| {},
        &never,
    )
    .unwrap();
    // Equal counter reinstalls.
    let cam = Camera::new();
    set_counter(&cam, 5);
    cam.install(&cam.bundle("g.bundle", "2.0.0", 5, Component::Model))
        .unwrap();
}

#[test]
fn an_announcement_cannot_pair_with_another_releases_bundle() {
    let cam = Camera::new();
    let before = cam.snapshot();
    let b = cam.bundle("good.bundle", "2.0.0", 5, Component::Rootfs);
    let e = cam
        .install_expect(
            &b,
            Some(&Expect {
                version: "2.1.0".into(),
                security_counter: 5,
            }),
        )
        .unwrap_err();
    assert_eq!(e.code(), "not-announced", "{e}");
    assert_eq!(before, cam.snapshot());
}

#[test]
fn overlapping_signing_keys_during_a_rotation_both_verify() {
    let mut cam = Camera::new();
    let new = SecretKey::from_bytes(&[4; 32]);
    let newpub = new.public_key();
    rotate(&mut cam, |r| {
        r.signers.push(Delegation {
            key: newpub,
            roles: vec![Role::Manifest],
            expires: NOW + DAY,
            note: None,
        });
    });
    cam.install(&cam.bundle("old-key.bundle", "2.0.0", 5, Component::App))
        .unwrap();
    let img = cam.image("n.img", 100_000, 5);
    let out = cam.path("new-key.bundle");
    bundle::create(
        &out,
        &cam.release("2.0.1", 5),
        &[(Component::Model, &img)],
        &[&new],
    )
    .unwrap();
    cam.install(&out).unwrap();
}

// ---- announcements (the agent's decision, before any download) ----

fn announcement(cam: &Camera) -> Announcement {
    let _ = cam;
    Announcement {
        kind: "announcement".into(),
        campaign: "spring".into(),
        seq: 3,
        issued: NOW,
        expires: NOW + DAY,
        url: "http://127.0.0.1:1/bundles/2.0.0.bundle".into(),
        version: "2.0.0".into(),
        security_counter: 5,
        size: 1 << 20,
        boards: vec!["rk3588".into()],
        percent: 100,
        window: None,
        halted: false,
    }
}

fn agent_config(cam: &Camera) -> AgentConfig {
    AgentConfig {
        camera_id: "cam-1".into(),
        store_id: "s1".into(),
        topic_prefix: "stores/{store}/cameras/{camera}".into(),
        announce_topic: "ota/announce".into(),
        roots_topic: "ota/roots".into(),
        broker: Broker {
            host: "127.0.0.1".into(),
            port: 1,
            username: None,
            password: None,
            tls: None,
        },
        state_dir: cam.path("state"),
        root_file: cam.path("root.json"),
        provisioning: None,
        version: "1.0.0".into(),
        allowed_urls: vec!["http://127.0.0.1:1/bundles/".into()],
        max_bundle_bytes: 64 << 20,
        reserve_bytes: 32 << 20,
        utc_offset_min: 0,
        health_deadline_s: 60,
        run_dir: cam.path("run"),
        layout: cam.layout.clone(),
    }
}

fn signed_ann(a: &Announcement, key: &SecretKey) -> Vec<u8> {
    serde_json::to_vec(&sign(a.to_payload(), Role::Announcement, &[key])).unwrap()
}

#[test]
fn bad_announcements_are_refused_with_their_reason() {
    let cam = Camera::new();
    let cfg = agent_config(&cam);
    let mut j = Journal::new(cam.trust.clone());
    let before = cam.snapshot();
    let good = announcement(&cam);
    let ok = agent::evaluate(&cfg, &j, &signed_ann(&good, &cam.keys.announcer), NOW);
    assert_eq!(
        ok,
        Evaluation::Decided(good.clone(), Verdict::Go { in_window: true })
    );

    let mut cases: Vec<(&str, Evaluation)> = Vec::new();
    let refused =
        |e: &Evaluation, says: &str| matches!(e, Evaluation::Refused(r) if r.contains(says));
    let rejected = |e: &Evaluation, says: &str| matches!(e, Evaluation::Decided(_, Verdict::Reject(r)) if r.contains(says));

    let forged = agent::evaluate(&cfg, &j, &signed_ann(&good, &cam.keys.stranger), NOW);
    assert!(refused(&forged, "unknown"), "{forged:?}");
    cases.push(("forged (unknown key)", forged));

    let wrong_role = agent::evaluate(&cfg, &j, &signed_ann(&good, &cam.keys.signer), NOW);
    assert!(refused(&wrong_role, "announcement"), "{wrong_role:?}");
    cases.push(("signed by the manifest key", wrong_role));

    let mut edited: Signed =
        serde_json::from_slice(&signed_ann(&good, &cam.keys.announcer)).unwrap();
    edited.payload = edited.payload.replace("\"percent\":100", "\"percent\":99");
    let e = agent::evaluate(&cfg, &j, &serde_json::to_vec(&edited).unwrap(), NOW);
    assert!(refused(&e, "signature"), "{e:?}");
    cases.push(("payload edited after signing", e));

    let mut a = good.clone();
    a.url = "http://evil.example/bundles/2.0.0.bundle".into();
    let e = agent::evaluate(&cfg, &j, &signed_ann(&a, &cam.keys.announcer), NOW);
    assert!(rejected(&e, "not under an allowed prefix"), "{e:?}");
    cases.push(("foreign URL", e));

    let mut a = good.clone();
    a.expires = NOW - 1;
    a.issued = NOW - DAY;
    let e = agent::evaluate(&cfg, &j, &signed_ann(&a, &cam.keys.announcer), NOW);
    assert!(rejected(&e, "expired"), "{e:?}");
    cases.push(("expired", e));

    // Expired, with the camera clock stepped back before the expiry: the
    // trusted time (a later signed time seen) still refuses it.
    let mut j2 = j.clone();
    j2.trust.observe_signed_time(NOW + 2 * DAY).unwrap();
    let e = agent::evaluate(
        &cfg,
        &j2,
        &signed_ann(&good, &cam.keys.announcer),
        NOW - 30 * DAY,
    );
    assert!(rejected(&e, "expired"), "{e:?}");
    cases.push(("clock stepped back", e));

    // Clock at 1970 with a fresh announcement: decided on trusted time.
    let e = agent::evaluate(&cfg, &j, &signed_ann(&good, &cam.keys.announcer), 0);
    assert_eq!(
        e,
        Evaluation::Decided(good.clone(), Verdict::Go { in_window: true })
    );

    let mut a = good.clone();
    a.security_counter = 2;
    let other = Camera::new();
    set_counter(&other, 4);
    let e = agent::evaluate(
        &agent_config(&other),
        &j,
        &signed_ann(&a, &cam.keys.announcer),
        NOW,
    );
    assert!(rejected(&e, "below the installed 4"), "{e:?}");
    cases.push(("lower security counter", e));

    let mut a = good.clone();
    a.size = 65 << 20;
    let e = agent::evaluate(&cfg, &j, &signed_ann(&a, &cam.keys.announcer), NOW);
    assert!(rejected(&e, "limit"), "{e:?}");
    cases.push(("oversize bundle", e));

    // Replayed / duplicated: not newer than what was seen.
    j.seen.insert("spring".into(), 3);
    let e = agent::evaluate(&cfg, &j, &signed_ann(&good, &cam.keys.announcer), NOW);
    assert!(
        matches!(&e, Evaluation::Decided(_, Verdict::Ignore(r)) if r.contains("not newer")),
        "{e:?}"
    );
    cases.push(("replayed", e));
    j.seen.clear();

    let e = agent::evaluate(&cfg, &j, b"{\"payload\":\"{}\",\"signatures\":[]", NOW);
    assert!(refused(&e, "not a signed document"), "{e:?}");
    cases.push(("not JSON", e));

    let e = agent::evaluate(&cfg, &j, &vec![b' '; 64 * 1024], NOW);
    assert!(refused(&e, "too large"), "{e:?}");
    cases.push(("too large", e));

    let mut a = good.clone();
    a.boards = vec!["rv1106".into()];
    let e = agent::evaluate(&cfg, &j, &signed_ann(&a, &cam.keys.announcer), NOW);
    assert!(
        matches!(&e, Evaluation::Decided(_, Verdict::Ignore(r)) if r.contains("not for a rk3588")),
        "{e:?}"
    );
    cases.push(("another board's campaign", e));

    assert_eq!(
        before,
        cam.snapshot(),
        "an announcement changed a slot or the environment"
    );
    for (name, e) in &cases {
        println!("announcement refused: {name:<30} {e:?}");
    }
    println!("{} bad announcements refused", cases.len());
}

#[test]
fn verify_checks_the_whole_image_hash_too() {
    let cam = Camera::new();
    let (h, p) = split(&good(&cam));
    let mut m = manifest_of(&h);
    m.images[0].sha256 = Digest([7; 32]);
    let bytes = join(&resign(&m, &cam.keys.signer), &p);
    let e = ota::install::verify(&mut bytes.as_slice(), &cam.trust, NOW).unwrap_err();
    assert_eq!(e.code(), "hash-mismatch", "{e}");
    assert!(e.to_string().contains("its sha256 is"), "{e}");
    let good = good(&cam);
    ota::install::verify(&mut good.as_slice(), &cam.trust, NOW).unwrap();
}

/// A slot being overwritten loses its trial and its recorded version
/// before its first byte changes: a refused install mid-stream leaves no
/// pending slot and no version claiming the half-written bytes.
#[test]
fn a_slot_overwritten_by_a_refused_bundle_keeps_no_version() {
    let cam = Camera::new();
    let install = |bytes: &[u8]| {
        let path = cam.path("b.bundle");
        std::fs::write(&path, bytes).unwrap();
        cam.install(&path)
    };
    install(&good(&cam)).unwrap();
    assert_eq!(cam.vars()["ota_rootfs_version_B"], "2.0.0");
    let (h, mut p) = split(&good(&cam));
    p[3 * CHUNK as usize + 17] ^= 0x10;
    let e = install(&join(&h, &p)).unwrap_err();
    assert_eq!(e.code(), "hash-mismatch", "{e}");
    let vars = cam.vars();
    assert!(!vars.contains_key("ota_rootfs_pending"), "{vars:?}");
    assert!(!vars.contains_key("ota_rootfs_version_B"), "{vars:?}");
}

/// Two installs into the same slot at once, a good bundle and one whose
/// last chunk is damaged, started at random offsets of each other: one
/// holds the lock for its whole transaction and the other is refused
/// (`busy`) or runs after it. Never a slot holding chunks of both, never a
/// pending slot that fails its read-back.
#[test]
fn racing_installs_never_leave_a_mixed_or_unverified_pending_slot() {
    const ROUNDS: u64 = 50;
    const LEN: u64 = 900_000;
    let (mut busy, mut serialised) = (0, 0);
    for round in 0..ROUNDS {
        let cam = Camera::new();
        let app_bundle = |name: &str, version: &str, counter: u64, seed: u64| {
            let img = cam.image(&format!("{name}.img"), LEN, seed);
            let out = cam.path(&format!("{name}.bundle"));
            let release = cam.release(version, counter);
            bundle::create(
                &out,
                &release,
                &[(Component::App, &img)],
                &[&cam.keys.signer],
            )
            .unwrap();
            (img, out)
        };
        let (good_img, good) = app_bundle("good", "2.0.0", 5, 1000 + round);
        let (_, bad) = app_bundle("bad", "2.1.0", 6, 2000 + round);
        // Damage the last chunk: the bad install writes every chunk but
        // the last before it is refused.
        let mut bytes = std::fs::read(&bad).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&bad, &bytes).unwrap();

        let mut rng = fastrand::Rng::with_seed(round);
        let delays = [rng.u64(0..3000), rng.u64(0..3000)];
        let start = std::sync::Barrier::new(2);
        let run = |path: &std::path::Path, delay: u64| {
            start.wait();
            std::thread::sleep(std::time::Duration::from_micros(delay));
            cam.install(path)
        };
        let (g, b) = std::thread::scope(|s| {
            let g = s.spawn(|| run(&good, delays[0]));
            let b = s.spawn(|| run(&bad, delays[1]));
            (g.join().unwrap(), b.join().unwrap())
        });
        let codes = (
            g.as_ref().map_err(|e| e.code()).err(),
            b.as_ref().map_err(|e| e.code()).err(),
        );
        match codes {
            (None, Some("hash-mismatch")) => serialised += 1,
            (Some("busy"), Some("hash-mismatch")) | (None, Some("busy")) => busy += 1,
            other => panic!("round {round} (delays {delays:?} µs): {other:?}"),
        }
        // Whatever the order: a pending slot holds exactly the good image.
        let vars = cam.vars();
        if let Some(slot) = vars.get("ota_app_pending") {
            assert_eq!(slot, "B", "round {round}");
            let want = std::fs::read(&good_img).unwrap();
            let got = std::fs::read(&cam.layout.slots[&Component::App][1]).unwrap();
            assert!(
                got[..want.len()] == want[..],
                "round {round}: slot B is pending but does not hold the good image"
            );
            assert_eq!(vars["ota_app_version_B"], "2.0.0", "round {round}");
        }
    }
    println!(
        "{ROUNDS} rounds: {busy} with one install refused as busy, {serialised} one after the other"
    );
    assert!(busy > 0, "no round overlapped: the race was not exercised");
}
