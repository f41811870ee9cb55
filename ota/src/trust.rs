//! The trust chain for signed updates: which keys may sign what, and until
//! when. Sans-IO and pure: callers hand in bytes and the camera's clock,
//! and get back a decision; persisting [`Trust`] is their business.
//!
//! The shape follows TUF (and its Rust implementation, tough), cut down to
//! what a camera needs:
//!
//! * **Roles.** [`Role::Root`] keys (k-of-n, kept offline) sign [`Root`]
//!   metadata. A root *delegates* [`Role::Manifest`] (what to install) and
//!   [`Role::Announcement`] (that an update exists) to online signer keys,
//!   each delegation with its own expiry. A root key is never a signer
//!   key, so the online keys can be lost without losing the fleet.
//! * **Domain separation.** Every signature covers
//!   `b"retail-camera-ota/v1\0" ++ role ++ b"\0" ++ payload`, so a
//!   signature made for one role can never be replayed as another, even
//!   over identical bytes, and nothing signed by other tools with the same
//!   key can be replayed here.
//! * **Envelope.** [`Signed`] carries the exact JSON text that was signed,
//!   not a re-serialised value, so there is no canonical-JSON problem:
//!   verify the bytes, then parse them.
//! * **k-of-n.** Roots need `threshold` of their own keys; manifests and
//!   announcements need `thresholds.{manifest,announcement}` of the keys
//!   delegated that role. A key counts once however often it signed.
//!   Signatures that do not count (unknown key, revoked, wrong role,
//!   expired delegation, bad or malformed signature) are not fatal by
//!   themselves, but are reported, and listed in the error when the
//!   threshold is not met.
//! * **Rotation.** Root v(N+1) must be signed by a threshold of root vN's
//!   keys *and* a threshold of its own, and versions go up by exactly one,
//!   so a root cannot be replayed or skipped. Intermediate roots of a
//!   chain may have expired; only the root the chain ends on must be
//!   current (TUF §5.3), because a camera that sat on a shelf for years
//!   has to walk every rotation it missed. An expired *current* root never
//!   blocks rotation: otherwise the only fix would be a screwdriver
//!   (rauc#781).
//! * **Revocation.** Revoked key ids accumulate on the camera across
//!   rotations; a later root that forgets the entry does not un-revoke a
//!   key, and a root that lists a revoked key again is refused.
//! * **Time.** There is no RTC we can trust (rauc#581): the clock may sit
//!   at 1970 or have jumped to 2099. Like tough, we keep the latest time
//!   we have seen in *signed* data (root `issued`, announcement `issued`
//!   via [`Trust::observe_signed_time`]) and use `max(clock, latest_known)`
//!   as "now". The local clock never raises the stored time, so a clock
//!   that jumped forward does not poison the store; a clock that jumped
//!   back cannot revive expired keys. There is no "not yet valid" check:
//!   it would only brick cameras whose clock is behind. A clock in the
//!   future makes things look expired, and the error says what the clock
//!   read, so an installer can see it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Prefix of every signed message; the version lets a future format
/// change the layout without old signatures becoming valid under it.
const DOMAIN: &[u8] = b"retail-camera-ota/v1\0";

/// First word of a secret key file.
const SECRET_KEY_TAG: &str = "ota-secret-key-v1";

/// More signatures than any sane k-of-n needs; bounds the work a hostile
/// envelope can cause.
pub const MAX_SIGNATURES: usize = 64;

/// Why something was not trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{what} is not valid JSON of the expected shape: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("root v{version} is invalid: {reason}")]
    InvalidRoot { version: u64, reason: String },
    #[error(
        "{role} needs {need} valid signature(s) from {signers}, found {valid}{}",
        list_rejected(.rejected)
    )]
    ThresholdNotMet {
        role: Role,
        signers: SignerSet,
        valid: usize,
        need: u32,
        rejected: Vec<(KeyId, Rejection)>,
    },
    #[error("root v{got} does not follow the current root v{current} (versions go up by one)")]
    VersionNotNext { current: u64, got: u64 },
    #[error(
        "root v{version} expired at {expires}; the camera's clock reads {system_now}, \
         latest signed time seen is {latest_known}, so now is taken as {effective_now}"
    )]
    RootExpired {
        version: u64,
        expires: u64,
        system_now: u64,
        latest_known: u64,
        effective_now: u64,
    },
    #[error("root v{version} lists key {keyid}, which was revoked earlier")]
    RevokedKeyListed { keyid: KeyId, version: u64 },
    #[error("{role} is not an update role; roots are checked through rotation")]
    NotAnUpdateRole { role: Role },
    #[error("{count} signatures on one envelope, at most {max} are accepted")]
    TooManySignatures { count: usize, max: usize },
    #[error(
        "signed time {time} is at or after the expiry {root_expires} of root v{root_version}; \
         not recorded"
    )]
    TimeBeyondRoot {
        time: u64,
        root_version: u64,
        root_expires: u64,
    },
    #[error("bad key id {id:?}: expected 64 lowercase hex digits")]
    BadKeyId { id: String },
    #[error("bad public key: {reason}")]
    BadPublicKey { reason: String },
    // Never holds the text itself: it may be a secret.
    #[error("bad secret key text: {reason}")]
    BadSecretKey { reason: &'static str },
    #[error("no OS randomness for a new key: {reason}")]
    Randomness { reason: String },
    #[error("stored trust state is inconsistent: {reason}")]
    BadState { reason: String },
}

fn list_rejected(rejected: &[(KeyId, Rejection)]) -> String {
    if rejected.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = rejected
        .iter()
        .map(|(id, why)| format!("{id}: {why}"))
        .collect();
    format!(" (not counted: {})", parts.join("; "))
}

/// Whose signatures a threshold was counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerSet {
    /// The keys of root `version` itself.
    RootKeys { version: u64 },
    /// The keys root `root_version` delegates the role to.
    Delegated { root_version: u64 },
    /// The vendor's factory keys the image carries.
    Factory,
}

impl fmt::Display for SignerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignerSet::RootKeys { version } => write!(f, "the keys of root v{version}"),
            SignerSet::Delegated { root_version } => {
                write!(f, "the keys delegated by root v{root_version}")
            }
            SignerSet::Factory => f.write_str("the factory keys"),
        }
    }
}

/// Why one signature did not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not a key of this root (or not delegated by it).
    UnknownKey,
    /// A root key; root keys only sign roots.
    RootKeyNotDelegated,
    /// Revoked by this or an earlier root.
    Revoked,
    /// Delegated, but not for this role.
    WrongRole { has: Vec<Role> },
    /// The delegation ended at `expires`; now is taken as `effective_now`.
    DelegationExpired { expires: u64, effective_now: u64 },
    /// Not base64, or not 64 bytes.
    MalformedSignature { reason: String },
    /// Well-formed but does not verify for this role and payload.
    BadSignature,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::UnknownKey => f.write_str("unknown key"),
            Rejection::RootKeyNotDelegated => f.write_str("root key, not delegated this role"),
            Rejection::Revoked => f.write_str("revoked"),
            Rejection::WrongRole { has } => {
                let roles: Vec<&str> = has.iter().map(|r| r.as_str()).collect();
                write!(f, "wrong role (delegated: {})", roles.join(", "))
            }
            Rejection::DelegationExpired {
                expires,
                effective_now,
            } => write!(f, "delegation expired at {expires} (now {effective_now})"),
            Rejection::MalformedSignature { reason } => write!(f, "malformed signature: {reason}"),
            Rejection::BadSignature => f.write_str("bad signature"),
        }
    }
}

/// What a signature is for; part of every signed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Root,
    Manifest,
    Announcement,
    /// A camera's factory bundle (`crate::provision`), signed by the
    /// vendor's factory keys, which the image carries: no store chain's
    /// root can delegate it.
    Factory,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Manifest => "manifest",
            Role::Announcement => "announcement",
            Role::Factory => "factory",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bytes a signature covers (see the module docs).
fn signing_input(role: Role, payload: &str) -> Vec<u8> {
    let role = role.as_str().as_bytes();
    let mut msg = Vec::with_capacity(DOMAIN.len() + role.len() + 1 + payload.len());
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(role);
    msg.push(0);
    msg.extend_from_slice(payload.as_bytes());
    msg
}

/// Lowercase hex of sha256 over the 32 public key bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    fn of(key: &VerifyingKey) -> KeyId {
        KeyId(hex::encode(Sha256::digest(key.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyId {
    type Error = TrustError;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        // Lowercase only: ids are compared as strings.
        if id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(KeyId(id))
        } else {
            Err(TrustError::BadKeyId { id })
        }
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> String {
        id.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// An ed25519 public key; in JSON, 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn from_hex(text: &str) -> Result<PublicKey, TrustError> {
        let bad = |reason: &str| TrustError::BadPublicKey {
            reason: reason.to_owned(),
        };
        if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("expected 64 lowercase hex digits"));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|e| bad(&e.to_string()))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a curve point"))?;
        // Small-order keys verify signatures on many messages.
        if key.is_weak() {
            return Err(bad("weak (small-order) key"));
        }
        Ok(PublicKey(key))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    pub fn key_id(&self) -> KeyId {
        KeyId::of(&self.0)
    }

    fn verify(&self, role: Role, payload: &str, sig: &str) -> Result<(), Rejection> {
        let raw = BASE64
            .decode(sig)
            .map_err(|e| Rejection::MalformedSignature {
                reason: format!("not base64: {e}"),
            })?;
        let raw: [u8; 64] =
            raw.as_slice()
                .try_into()
                .map_err(|_| Rejection::MalformedSignature {
                    reason: format!("{} bytes, expected 64", raw.len()),
                })?;
        // Strict: no malleable signatures, no small-order points.
        self.0
            .verify_strict(&signing_input(role, payload), &Signature::from_bytes(&raw))
            .map_err(|_| Rejection::BadSignature)
    }
}

impl TryFrom<String> for PublicKey {
    type Error = TrustError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        PublicKey::from_hex(&text)
    }
}

impl From<PublicKey> for String {
    fn from(key: PublicKey) -> String {
        key.to_hex()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// An ed25519 signing key. Only vendor tools hold these; the camera never
/// does. The inner key is wiped on drop (ed25519-dalek's zeroize); text
/// from [`SecretKey::to_text`] is not, so keep it short-lived.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A new key from the OS random source.
    pub fn generate() -> Result<SecretKey, TrustError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| TrustError::Randomness {
            reason: e.to_string(),
        })?;
        let key = SecretKey(SigningKey::from_bytes(&seed));
        seed.fill(0);
        std::hint::black_box(&seed);
        Ok(key)
    }

    /// The key for a 32-byte seed (as stored in key files).
    pub fn from_bytes(seed: &[u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(seed))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    /// `ota-secret-key-v1 <64 hex digits>\n`: one line, easy to tell
    /// apart from a public key.
    pub fn to_text(&self) -> String {
        format!("{SECRET_KEY_TAG} {}\n", hex::encode(self.0.as_bytes()))
    }

    pub fn from_text(text: &str) -> Result<SecretKey, TrustError> {
        let bad = |reason| TrustError::BadSecretKey { reason };
        let mut words = text.split_ascii_whitespace();
        if words.next() != Some(SECRET_KEY_TAG) {
            return Err(bad("does not start with \"ota-secret-key-v1\""));
        }
        let Some(hex_seed) = words.next() else {
            return Err(bad("no key after the tag"));
        };
        if words.next().is_some() {
            return Err(bad("text after the key"));
        }
        let mut seed = [0u8; 32];
        if hex_seed.len() != 64 || hex::decode_to_slice(hex_seed, &mut seed).is_err() {
            return Err(bad("key is not 64 hex digits"));
        }
        let key = SecretKey::from_bytes(&seed);
        seed.fill(0);
        std::hint::black_box(&seed);
        Ok(key)
    }

    fn sign_entry(&self, role: Role, payload: &str) -> SignatureEntry {
        let sig = self.0.sign(&signing_input(role, payload));
        SignatureEntry {
            keyid: self.key_id(),
            sig: BASE64.encode(sig.to_bytes()),
        }
    }
}

impl fmt::Debug for SecretKey {
    // Only the public half: Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    pub keyid: KeyId,
    /// Standard base64 of the 64 signature bytes.
    pub sig: String,
}

/// A payload and its signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// The exact JSON text signed; parse it only after verifying it.
    pub payload: String,
    pub signatures: Vec<SignatureEntry>,
}

/// Checks a [`Role::Factory`] envelope against the vendor's factory keys
/// (no root: a camera is provisioned before it trusts any store chain);
/// one valid signature suffices. Returns the ids of the keys that signed.
pub fn verify_factory(signed: &Signed, keys: &[PublicKey]) -> Result<Vec<KeyId>, TrustError> {
    let role = Role::Factory;
    let tally = signed
        .tally(role, |id| {
            keys.iter()
                .find(|k| &k.key_id() == id)
                .ok_or(Rejection::UnknownKey)
        })?
        .require(role, SignerSet::Factory, 1)?;
    Ok(tally.valid.into_iter().collect())
}

/// Signs `payload` for `role` with each of `keys`.
pub fn sign(payload: String, role: Role, keys: &[&SecretKey]) -> Signed {
    let mut signed = Signed {
        payload,
        signatures: Vec::new(),
    };
    for key in keys {
        signed.add_signature(role, key);
    }
    signed
}

impl Signed {
    /// Adds `key`'s signature, replacing an earlier one by the same key,
    /// so k-of-n signers can sign one after another in any order.
    pub fn add_signature(&mut self, role: Role, key: &SecretKey) {
        let entry = key.sign_entry(role, &self.payload);
        match self.signatures.iter_mut().find(|e| e.keyid == entry.keyid) {
            Some(old) => *old = entry,
            None => self.signatures.push(entry),
        }
    }

    /// Counts distinct keys with a valid signature for `role`; `lookup`
    /// says whether a key id may sign at all.
    fn tally<'k>(
        &self,
        role: Role,
        lookup: impl Fn(&KeyId) -> Result<&'k PublicKey, Rejection>,
    ) -> Result<Tally, TrustError> {
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(TrustError::TooManySignatures {
                count: self.signatures.len(),
                max: MAX_SIGNATURES,
            });
        }
        let mut valid = BTreeSet::new();
        let mut rejected = Vec::new();
        for entry in &self.signatures {
            // A key counts once, however often it signed.
            if valid.contains(&entry.keyid) {
                continue;
            }
            match lookup(&entry.keyid).and_then(|key| key.verify(role, &self.payload, &entry.sig)) {
                Ok(()) => {
                    valid.insert(entry.keyid.clone());
                }
                Err(why) => rejected.push((entry.keyid.clone(), why)),
            }
        }
        Ok(Tally { valid, rejected })
    }
}

struct Tally {
    valid: BTreeSet<KeyId>,
    rejected: Vec<(KeyId, Rejection)>,
}

impl Tally {
    fn require(self, role: Role, signers: SignerSet, need: u32) -> Result<Tally, TrustError> {
        if self.valid.len() >= need as usize {
            Ok(self)
        } else {
            Err(TrustError::ThresholdNotMet {
                role,
                signers,
                valid: self.valid.len(),
                need,
                rejected: self.rejected,
            })
        }
    }
}

/// An online key and what it may sign, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    pub key: PublicKey,
    /// [`Role::Manifest`] and/or [`Role::Announcement`].
    pub roles: Vec<Role>,
    /// Unix seconds; the key signs nothing from then on.
    pub expires: u64,
    /// Who holds it, for people reading the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How many delegated signatures each update role needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub manifest: u32,
    pub announcement: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            manifest: 1,
            announcement: 1,
        }
    }
}

impl Thresholds {
    fn get(&self, role: Role) -> Option<u32> {
        match role {
            Role::Root => None,
            Role::Manifest => Some(self.manifest),
            Role::Announcement => Some(self.announcement),
            Role::Factory => None,
        }
    }
}

/// The `"type": "root"` tag, so that other metadata can never parse as a
/// root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum RootTag {
    #[serde(rename = "root")]
    Root,
}

/// Root metadata: the payload of a [`Role::Root`]-signed envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    #[serde(rename = "type")]
    tag: RootTag,
    /// 1 for the first root, then +1 per rotation.
    pub version: u64,
    /// Unix seconds; raises the camera's latest known time.
    pub issued: u64,
    /// Unix seconds; no update verifies under this root from then on.
    pub expires: u64,
    /// How many of `keys` must sign this root and its successor (k).
    pub threshold: u32,
    /// The root keys (n).
    pub keys: Vec<PublicKey>,
    pub signers: Vec<Delegation>,
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(default)]
    pub revoked: Vec<KeyId>,
}

impl Root {
    /// A first root, checked.
    pub fn new_v1(
        keys: Vec<PublicKey>,
        threshold: u32,
        signers: Vec<Delegation>,
        expires: u64,
        issued: u64,
    ) -> Result<Root, TrustError> {
        let root = Root {
            tag: RootTag::Root,
            version: 1,
            issued,
            expires,
            threshold,
            keys,
            signers,
            thresholds: Thresholds::default(),
            revoked: Vec::new(),
        };
        root.validate()?;
        Ok(root)
    }

    /// A copy with the version raised by one, to edit (issued, expires,
    /// keys…) and sign as the successor.
    pub fn next(&self) -> Root {
        Root {
            version: self.version.saturating_add(1),
            ..self.clone()
        }
    }

    /// The JSON text to sign.
    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).expect("a Root always serialises: no maps with non-string keys")
    }

    /// Parses and checks a payload. Does not check signatures.
    pub fn parse(payload: &str) -> Result<Root, TrustError> {
        let root: Root = serde_json::from_str(payload).map_err(|source| TrustError::Json {
            what: "root payload",
            source,
        })?;
        root.validate()?;
        Ok(root)
    }

    /// Rules every root must follow, whatever the camera's state.
    pub fn validate(&self) -> Result<(), TrustError> {
        let bad = |reason: String| {
            Err(TrustError::InvalidRoot {
                version: self.version,
                reason,
            })
        };
        if self.version == 0 {
            return bad("version starts at 1".into());
        }
        if self.expires <= self.issued {
            return bad(format!(
                "expires {} is not after issued {}",
                self.expires, self.issued
            ));
        }
        if self.threshold == 0 || self.threshold as usize > self.keys.len() {
            return bad(format!(
                "threshold {} with {} root keys",
                self.threshold,
                self.keys.len()
            ));
        }
        let root_ids: BTreeSet<KeyId> = self.keys.iter().map(PublicKey::key_id).collect();
        if root_ids.len() != self.keys.len() {
            return bad("a root key is listed twice".into());
        }
        let mut signer_ids = BTreeSet::new();
        for d in &self.signers {
            let id = d.key.key_id();
            if d.roles.is_empty() {
                return bad(format!("signer {id} has no roles"));
            }
            if d.roles.contains(&Role::Root) {
                return bad(format!("signer {id} is delegated the root role"));
            }
            // Factory keys are the vendor's, carried by the image.
            if d.roles.contains(&Role::Factory) {
                return bad(format!("signer {id} is delegated the factory role"));
            }
            // Root keys stay offline; an online copy would make them
            // as exposed as a signer key.
            if root_ids.contains(&id) {
                return bad(format!("root key {id} is also a signer"));
            }
            if !signer_ids.insert(id.clone()) {
                return bad(format!("signer {id} is listed twice"));
            }
        }
        for role in [Role::Manifest, Role::Announcement] {
            let need = self.thresholds.get(role).unwrap_or(0);
            let have = self
                .signers
                .iter()
                .filter(|d| d.roles.contains(&role))
                .count();
            // No signer for a role disables it; some signers but too
            // few is a mistake that would block every update.
            if need == 0 || (have > 0 && need as usize > have) {
                return bad(format!("{role} threshold {need} with {have} signers"));
            }
        }
        for id in &self.revoked {
            if root_ids.contains(id) || signer_ids.contains(id) {
                return bad(format!("key {id} is both listed and revoked"));
            }
        }
        Ok(())
    }

    fn key_lookup(&self) -> BTreeMap<KeyId, &PublicKey> {
        self.keys.iter().map(|k| (k.key_id(), k)).collect()
    }

    /// Counts this root's own keys over `signed` and requires the
    /// threshold.
    fn check_signed_by_keys(
        &self,
        signed: &Signed,
        revoked: &BTreeSet<KeyId>,
    ) -> Result<(), TrustError> {
        let keys = self.key_lookup();
        signed
            .tally(Role::Root, |id| {
                if revoked.contains(id) {
                    return Err(Rejection::Revoked);
                }
                keys.get(id).copied().ok_or(Rejection::UnknownKey)
            })?
            .require(
                Role::Root,
                SignerSet::RootKeys {
                    version: self.version,
                },
                self.threshold,
            )?;
        Ok(())
    }
}

/// How the camera's clock compares with the latest signed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockNote {
    /// The clock is at or after everything signed we have seen.
    Trusted,
    /// The clock is behind a signed time (reset to 1970, no RTC battery,
    /// stepped back); `latest_known` was used instead.
    SteppedBack { system: u64, latest_known: u64 },
}

/// A payload that met its role's threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The signed JSON text, now safe to parse.
    pub payload: &'a str,
    pub role: Role,
    /// Distinct keys whose signatures counted, sorted.
    pub signers: Vec<KeyId>,
    /// Signatures that did not count; worth a log line.
    pub ignored: Vec<(KeyId, Rejection)>,
    pub root_version: u64,
    pub effective_now: u64,
    pub clock: ClockNote,
}

/// The camera's trust state: the current root, the latest signed time
/// seen and every key id ever revoked. Persist it with
/// [`Trust::to_json`]; [`Trust::from_json`] re-checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    root: Root,
    root_signed: Signed,
    latest_known: u64,
    revoked: BTreeSet<KeyId>,
}

/// What is persisted: the parsed root is derived from the envelope, so
/// the two cannot disagree.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustState {
    root: Signed,
    latest_known: u64,
    revoked: BTreeSet<KeyId>,
}

impl Trust {
    /// The root installed at the factory. It must carry a threshold of its
    /// own signatures; its expiry is not checked, so a camera flashed
    /// long after the root was made still boots and can rotate.
    pub fn from_initial_root(signed: &Signed) -> Result<Trust, TrustError> {
        let root = Root::parse(&signed.payload)?;
        let revoked: BTreeSet<KeyId> = root.revoked.iter().cloned().collect();
        root.check_signed_by_keys(signed, &revoked)?;
        Ok(Trust {
            latest_known: root.issued,
            root,
            root_signed: signed.clone(),
            revoked,
        })
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn root_signed(&self) -> &Signed {
        &self.root_signed
    }

    pub fn latest_known(&self) -> u64 {
        self.latest_known
    }

    pub fn revoked(&self) -> &BTreeSet<KeyId> {
        &self.revoked
    }

    /// "Now" for expiry checks: the clock, but never before a time we
    /// have seen signed.
    pub fn effective_now(&self, system_now: u64) -> (u64, ClockNote) {
        if system_now >= self.latest_known {
            (system_now, ClockNote::Trusted)
        } else {
            (
                self.latest_known,
                ClockNote::SteppedBack {
                    system: system_now,
                    latest_known: self.latest_known,
                },
            )
        }
    }

    /// Records a time from verified, signed data (an announcement's
    /// `issued`). Never pass the local clock here. A time at or past the
    /// current root's expiry is refused: the payload could not have
    /// verified then, and one bad signer must not be able to push the
    /// stored time so far that every later root looks expired.
    pub fn observe_signed_time(&mut self, time: u64) -> Result<(), TrustError> {
        if time >= self.root.expires {
            return Err(TrustError::TimeBeyondRoot {
                time,
                root_version: self.root.version,
                root_expires: self.root.expires,
            });
        }
        self.latest_known = self.latest_known.max(time);
        Ok(())
    }

    /// Rotates to the next root (version current+1). See
    /// [`Trust::update_root_chain`].
    pub fn update_root(&mut self, new: &Signed, system_now: u64) -> Result<(), TrustError> {
        self.update_root_chain(std::slice::from_ref(new), system_now)
    }

    /// Walks `chain` (versions current+1, current+2, …): each root must be
    /// signed by a threshold of its predecessor's keys and of its own.
    /// Only the last must be unexpired; the current and intermediate ones
    /// may have expired while the camera was off. All or nothing: on
    /// error `self` is unchanged.
    pub fn update_root_chain(
        &mut self,
        chain: &[Signed],
        system_now: u64,
    ) -> Result<(), TrustError> {
        let mut next = self.clone();
        for signed in chain {
            next.apply_root(signed)?;
        }
        next.check_root_current(system_now)?;
        if next.root.version != self.root.version {
            tracing::info!(
                from = self.root.version,
                to = next.root.version,
                "root rotated"
            );
        }
        *self = next;
        Ok(())
    }

    fn apply_root(&mut self, signed: &Signed) -> Result<(), TrustError> {
        let new = Root::parse(&signed.payload)?;
        if self.root.version.checked_add(1) != Some(new.version) {
            return Err(TrustError::VersionNotNext {
                current: self.root.version,
                got: new.version,
            });
        }
        let listed = new
            .keys
            .iter()
            .chain(new.signers.iter().map(|d| &d.key))
            .map(PublicKey::key_id);
        for keyid in listed {
            if self.revoked.contains(&keyid) {
                return Err(TrustError::RevokedKeyListed {
                    keyid,
                    version: new.version,
                });
            }
        }
        // The old root vouches for the new one, and the new keys prove
        // they are held (a typo in a new key cannot lock the fleet out).
        self.root.check_signed_by_keys(signed, &self.revoked)?;
        let mut revoked = self.revoked.clone();
        revoked.extend(new.revoked.iter().cloned());
        new.check_signed_by_keys(signed, &revoked)?;

        self.latest_known = self.latest_known.max(new.issued);
        self.revoked = revoked;
        self.root = new;
        self.root_signed = signed.clone();
        Ok(())
    }

    fn check_root_current(&self, system_now: u64) -> Result<u64, TrustError> {
        let (now, _) = self.effective_now(system_now);
        if now >= self.root.expires {
            return Err(TrustError::RootExpired {
                version: self.root.version,
                expires: self.root.expires,
                system_now,
                latest_known: self.latest_known,
                effective_now: now,
            });
        }
        Ok(now)
    }

    /// Checks a manifest or announcement envelope against the current
    /// root. What the payload says (its own expiry, version, hashes) is
    /// the caller's to check after parsing it.
    pub fn verify<'a>(
        &self,
        signed: &'a Signed,
        role: Role,
        system_now: u64,
    ) -> Result<Verified<'a>, TrustError> {
        let Some(need) = self.root.thresholds.get(role) else {
            return Err(TrustError::NotAnUpdateRole { role });
        };
        let now = self.check_root_current(system_now)?;
        let (_, clock) = self.effective_now(system_now);
        let root_ids: BTreeSet<KeyId> = self.root.keys.iter().map(PublicKey::key_id).collect();
        let delegations: BTreeMap<KeyId, &Delegation> = self
            .root
            .signers
            .iter()
            .map(|d| (d.key.key_id(), d))
            .collect();
        let tally = signed
            .tally(role, |id| {
                if self.revoked.contains(id) {
                    return Err(Rejection::Revoked);
                }
                let Some(d) = delegations.get(id) else {
                    return Err(if root_ids.contains(id) {
                        Rejection::RootKeyNotDelegated
                    } else {
                        Rejection::UnknownKey
                    });
                };
                if !d.roles.contains(&role) {
                    return Err(Rejection::WrongRole {
                        has: d.roles.clone(),
                    });
                }
                if now >= d.expires {
                    return Err(Rejection::DelegationExpired {
                        expires: d.expires,
                        effective_now: now,
                    });
                }
                Ok(&d.key)
            })?
            .require(
                role,
                SignerSet::Delegated {
                    root_version: self.root.version,
                },
                need,
            )?;
        Ok(Verified {
            payload: &signed.payload,
            role,
            signers: tally.valid.into_iter().collect(),
            ignored: tally.rejected,
            root_version: self.root.version,
            effective_now: now,
            clock,
        })
    }

    pub fn to_json(&self) -> String {
        let state = TrustState {
            root: self.root_signed.clone(),
            latest_known: self.latest_known,
            revoked: self.revoked.clone(),
        };
        serde_json::to_string_pretty(&state).expect("trust state always serialises")
    }

    /// Reloads [`Trust::to_json`] output, re-checking what can be checked
    /// without the history: the root parses, carries a threshold of its
    /// own signatures and agrees with the revocation list.
    pub fn from_json(text: &str) -> Result<Trust, TrustError> {
        let state: TrustState = serde_json::from_str(text).map_err(|source| TrustError::Json {
            what: "trust state",
            source,
        })?;
        let root = Root::parse(&state.root.payload)?;
        let bad = |reason: String| Err(TrustError::BadState { reason });
        if let Some(id) = root.revoked.iter().find(|id| !state.revoked.contains(id)) {
            return bad(format!("root revokes {id} but the state does not"));
        }
        let listed = root
            .keys
            .iter()
            .chain(root.signers.iter().map(|d| &d.key))
            .map(PublicKey::key_id);
        for id in listed {
            if state.revoked.contains(&id) {
                return bad(format!("root v{} lists revoked key {id}", root.version));
            }
        }
        root.check_signed_by_keys(&state.root, &state.revoked)?;
        Ok(Trust {
            // The root's own issued time was seen when it was accepted.
            latest_known: state.latest_known.max(root.issued),
            root,
            root_signed: state.root,
            revoked: state.revoked,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// 2023-11-14, when the fixture roots are issued.
    const T0: u64 = 1_700_000_000;
    const DAY: u64 = 86_400;
    const YEAR: u64 = 365 * DAY;
    /// 2099-01-01.
    const Y2099: u64 = 4_070_908_800;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes(&[n; 32])
    }

    /// Root keys 1..=3, manifest signer 10, announcement signer 20.
    struct Keys {
        root: [SecretKey; 3],
        manifest: SecretKey,
        announce: SecretKey,
    }

    fn keys() -> Keys {
        Keys {
            root: [key(1), key(2), key(3)],
            manifest: key(10),
            announce: key(20),
        }
    }

    fn delegate(key: &SecretKey, roles: &[Role], expires: u64) -> Delegation {
        Delegation {
            key: key.public_key(),
            roles: roles.to_vec(),
            expires,
            note: None,
        }
    }

    fn root_v1(k: &Keys) -> Root {
        Root::new_v1(
            k.root.iter().map(SecretKey::public_key).collect(),
            2,
            vec![
                delegate(&k.manifest, &[Role::Manifest], T0 + 5 * YEAR),
                delegate(&k.announce, &[Role::Announcement], T0 + 5 * YEAR),
            ],
            T0 + 10 * YEAR,
            T0,
        )
        .unwrap()
    }

    fn sign_root(root: &Root, keys: &[&SecretKey]) -> Signed {
        sign(root.to_payload(), Role::Root, keys)
    }

    fn trust(k: &Keys) -> Trust {
        Trust::from_initial_root(&sign_root(&root_v1(k), &[&k.root[0], &k.root[1]])).unwrap()
    }

    fn manifest(keys: &[&SecretKey]) -> Signed {
        sign(
            r#"{"version":"1.2.3","sha256":"00"}"#.into(),
            Role::Manifest,
            keys,
        )
    }

    fn rejected(err: TrustError) -> Vec<(KeyId, Rejection)> {
        match err {
            TrustError::ThresholdNotMet { rejected, .. } => rejected,
            other => panic!("expected ThresholdNotMet, got {other:?}"),
        }
    }

    #[test]
    fn initial_root_needs_threshold_of_own_keys() {
        let k = keys();
        let root = root_v1(&k);
        let t = Trust::from_initial_root(&sign_root(&root, &[&k.root[0], &k.root[2]])).unwrap();
        assert_eq!(t.root().version, 1);
        assert_eq!(t.latest_known(), T0);

        let err = Trust::from_initial_root(&sign_root(&root, &[&k.root[1]])).unwrap_err();
        assert!(
            matches!(
                err,
                TrustError::ThresholdNotMet {
                    role: Role::Root,
                    signers: SignerSet::RootKeys { version: 1 },
                    valid: 1,
                    need: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        // A delegated key's signature does not help a root.
        let err =
            Trust::from_initial_root(&sign_root(&root, &[&k.root[1], &k.manifest])).unwrap_err();
        assert_eq!(
            rejected(err),
            vec![(k.manifest.key_id(), Rejection::UnknownKey)]
        );
    }

    #[test]
    fn initial_root_expiry_not_checked() {
        let k = keys();
        let t = trust(&k);
        // Flashed long after expiry: still installs, then refuses updates
        // until rotated.
        assert!(t.root().expires < Y2099);
        let m = manifest(&[&k.manifest]);
        let err = t.verify(&m, Role::Manifest, Y2099);
        assert!(matches!(err, Err(TrustError::RootExpired { .. })));
    }

    /// v2 with new root keys 4..=6 and the same signers.
    fn root_v2_new_keys(t: &Trust) -> (Root, [SecretKey; 3]) {
        let new = [key(4), key(5), key(6)];
        let mut v2 = t.root().next();
        v2.keys = new.iter().map(SecretKey::public_key).collect();
        v2.issued = T0 + YEAR;
        v2.expires = T0 + 11 * YEAR;
        (v2, new)
    }

    #[test]
    fn rotation_with_old_and_new_signatures() {
        let k = keys();
        let mut t = trust(&k);
        let (v2, new) = root_v2_new_keys(&t);
        let signed = sign_root(&v2, &[&k.root[0], &k.root[2], &new[0], &new[1]]);
        t.update_root(&signed, T0 + YEAR).unwrap();
        assert_eq!(t.root().version, 2);
        assert_eq!(t.root_signed(), &signed);
        assert_eq!(t.latest_known(), T0 + YEAR);
        // The old root keys no longer sign roots.
        let v3 = t.root().next();
        let err = t
            .update_root(&sign_root(&v3, &[&k.root[0], &k.root[1]]), T0 + YEAR)
            .unwrap_err();
        assert!(matches!(
            err,
            TrustError::ThresholdNotMet {
                signers: SignerSet::RootKeys { version: 2 },
                ..
            }
        ));
    }

    #[test]
    fn rotation_without_old_signatures_refused() {
        let k = keys();
        let mut t = trust(&k);
        let (v2, new) = root_v2_new_keys(&t);
        let err = t
            .update_root(&sign_root(&v2, &[&k.root[0], &new[0], &new[1]]), T0)
            .unwrap_err();
        assert!(
            matches!(
                err,
                TrustError::ThresholdNotMet {
                    signers: SignerSet::RootKeys { version: 1 },
                    valid: 1,
                    need: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(t.root().version, 1);
    }

    #[test]
    fn rotation_without_new_signatures_refused() {
        let k = keys();
        let mut t = trust(&k);
        let (v2, new) = root_v2_new_keys(&t);
        let err = t
            .update_root(&sign_root(&v2, &[&k.root[0], &k.root[1], &new[2]]), T0)
            .unwrap_err();
        assert!(
            matches!(
                err,
                TrustError::ThresholdNotMet {
                    signers: SignerSet::RootKeys { version: 2 },
                    valid: 1,
                    need: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(t.root().version, 1);
    }

    #[test]
    fn version_skip_and_replay_refused() {
        let k = keys();
        let mut t = trust(&k);
        let all: Vec<&SecretKey> = k.root.iter().collect();
        let v3 = t.root().next().next();
        let err = t.update_root(&sign_root(&v3, &all), T0).unwrap_err();
        assert!(matches!(
            err,
            TrustError::VersionNotNext { current: 1, got: 3 }
        ));
        let err = t.update_root(&sign_root(t.root(), &all), T0).unwrap_err();
        assert!(matches!(
            err,
            TrustError::VersionNotNext { current: 1, got: 1 }
        ));
        // And after moving to v2, v1 cannot come back.
        let v1 = t.root().clone();
        t.update_root(&sign_root(&v1.next(), &all), T0).unwrap();
        let err = t.update_root(&sign_root(&v1, &all), T0).unwrap_err();
        assert!(matches!(
            err,
            TrustError::VersionNotNext { current: 2, got: 1 }
        ));
    }

    #[test]
    fn rotation_on_expired_current_root_allowed() {
        let k = keys();
        let mut t = trust(&k);
        let late = T0 + 12 * YEAR;
        assert!(late > t.root().expires);
        assert!(
            t.verify(&manifest(&[&k.manifest]), Role::Manifest, late)
                .is_err()
        );
        let mut v2 = t.root().next();
        v2.issued = late - DAY;
        v2.expires = late + 10 * YEAR;
        for d in &mut v2.signers {
            d.expires = late + 5 * YEAR;
        }
        t.update_root(&sign_root(&v2, &[&k.root[0], &k.root[1]]), late)
            .unwrap();
        assert_eq!(t.root().version, 2);
        t.verify(&manifest(&[&k.manifest]), Role::Manifest, late)
            .unwrap();
    }

    #[test]
    fn rotation_to_expired_root_refused() {
        let k = keys();
        let mut t = trust(&k);
        let before = t.to_json();
        let mut v2 = t.root().next();
        v2.expires = T0 + YEAR;
        let signed = sign_root(&v2, &[&k.root[0], &k.root[1]]);
        let err = t.update_root(&signed, T0 + 2 * YEAR).unwrap_err();
        assert!(
            matches!(
                err,
                TrustError::RootExpired {
                    version: 2,
                    system_now,
                    ..
                } if system_now == T0 + 2 * YEAR
            ),
            "{err:?}"
        );
        assert_eq!(t.to_json(), before);
        // The same root while it is current is fine.
        t.update_root(&signed, T0 + DAY).unwrap();
    }

    #[test]
    fn shelf_camera_walks_chain_through_expired_roots() {
        let k = keys();
        let signers = [&k.root[0], &k.root[1]];
        let v1 = root_v1(&k);
        let mut v2 = v1.next();
        v2.issued = T0 + YEAR;
        v2.expires = T0 + 2 * YEAR;
        let mut v3 = v2.next();
        v3.issued = T0 + 20 * YEAR;
        v3.expires = T0 + 30 * YEAR;
        let now = T0 + 21 * YEAR;
        let s2 = sign_root(&v2, &signers);
        let s3 = sign_root(&v3, &signers);

        // One at a time, v2 is already expired and refused…
        let mut t = trust(&k);
        assert!(matches!(
            t.update_root(&s2, now),
            Err(TrustError::RootExpired { version: 2, .. })
        ));
        // …but as a chain only the final root must be current.
        t.update_root_chain(&[s2.clone(), s3], now).unwrap();
        assert_eq!(t.root().version, 3);
        assert_eq!(t.latest_known(), T0 + 20 * YEAR);

        // A chain ending on an expired root changes nothing.
        let mut t = trust(&k);
        let before = t.clone();
        assert!(t.update_root_chain(&[s2], now).is_err());
        assert_eq!(t, before);
    }

    #[test]
    fn failed_rotations_leave_state_unchanged() {
        let k = keys();
        let mut t = trust(&k);
        t.observe_signed_time(T0 + DAY).unwrap();
        let before = t.clone();
        let good = [&k.root[0], &k.root[1]];
        let mut bad_roots = Vec::new();
        // Signed by one key only.
        bad_roots.push(sign_root(&t.root().next(), &[&k.root[0]]));
        // Version skip.
        bad_roots.push(sign_root(&t.root().next().next(), &good));
        // Invalid root (threshold above key count).
        let mut v2 = t.root().next();
        v2.threshold = 4;
        bad_roots.push(sign_root(&v2, &good));
        // Later in a chain: first element valid, second broken.
        let v2 = t.root().next();
        let mut v3 = v2.next();
        v3.expires = T0 + 3 * YEAR;
        let chain = [sign_root(&v2, &good), sign_root(&v3, &[&k.root[2]])];
        for bad in &bad_roots {
            assert!(t.update_root(bad, T0).is_err());
            assert_eq!(t, before);
        }
        assert!(t.update_root_chain(&chain, T0).is_err());
        assert_eq!(t, before);
        assert_eq!(t.to_json(), before.to_json());
    }

    #[test]
    fn manifest_from_delegated_key_accepted() {
        let k = keys();
        let t = trust(&k);
        let signed = manifest(&[&k.manifest]);
        let v = t.verify(&signed, Role::Manifest, T0 + DAY).unwrap();
        assert_eq!(v.payload, signed.payload);
        assert_eq!(v.signers, vec![k.manifest.key_id()]);
        assert_eq!(v.effective_now, T0 + DAY);
        assert_eq!(v.clock, ClockNote::Trusted);
        assert_eq!(v.root_version, 1);
        assert!(v.ignored.is_empty());
    }

    #[test]
    fn unknown_extra_signature_ignored_but_reported() {
        let k = keys();
        let t = trust(&k);
        let stranger = key(99);
        let m = manifest(&[&stranger, &k.manifest]);
        let v = t.verify(&m, Role::Manifest, T0).unwrap();
        assert_eq!(v.signers, vec![k.manifest.key_id()]);
        assert_eq!(v.ignored, vec![(stranger.key_id(), Rejection::UnknownKey)]);
    }

    #[test]
    fn wrong_role_refused() {
        let k = keys();
        let t = trust(&k);
        // The manifest key signs a (correctly tagged) announcement.
        let ann = sign("{}".into(), Role::Announcement, &[&k.manifest]);
        let err = t.verify(&ann, Role::Announcement, T0).unwrap_err();
        assert_eq!(
            rejected(err),
            vec![(
                k.manifest.key_id(),
                Rejection::WrongRole {
                    has: vec![Role::Manifest]
                }
            )]
        );
        // And Root is not something verify checks.
        let err = t.verify(&ann, Role::Root, T0).unwrap_err();
        assert!(matches!(
            err,
            TrustError::NotAnUpdateRole { role: Role::Root }
        ));
    }

    #[test]
    fn root_key_cannot_sign_manifest() {
        let k = keys();
        let t = trust(&k);
        let err = t
            .verify(&manifest(&[&k.root[0], &k.root[1]]), Role::Manifest, T0)
            .unwrap_err();
        assert_eq!(
            rejected(err),
            vec![
                (k.root[0].key_id(), Rejection::RootKeyNotDelegated),
                (k.root[1].key_id(), Rejection::RootKeyNotDelegated),
            ]
        );
    }

    #[test]
    fn signature_for_another_role_does_not_verify() {
        let k = keys();
        // Manifest key delegated both roles, so only the domain tag
        // differs between the two signatures.
        let mut root = root_v1(&k);
        root.signers = vec![delegate(
            &k.manifest,
            &[Role::Manifest, Role::Announcement],
            T0 + YEAR,
        )];
        let t = Trust::from_initial_root(&sign_root(&root, &[&k.root[0], &k.root[1]])).unwrap();
        let payload = r#"{"version":"1.2.3"}"#.to_string();
        let as_root = sign(payload.clone(), Role::Root, &[&k.manifest]);
        let as_ann = sign(payload.clone(), Role::Announcement, &[&k.manifest]);
        for forged in [&as_root, &as_ann] {
            let err = t.verify(forged, Role::Manifest, T0).unwrap_err();
            assert_eq!(
                rejected(err),
                vec![(k.manifest.key_id(), Rejection::BadSignature)]
            );
        }
        // A plain ed25519 signature over the payload alone does not either.
        let raw = k.manifest.0.sign(payload.as_bytes());
        let plain = Signed {
            payload: payload.clone(),
            signatures: vec![SignatureEntry {
                keyid: k.manifest.key_id(),
                sig: BASE64.encode(raw.to_bytes()),
            }],
        };
        assert!(t.verify(&plain, Role::Manifest, T0).is_err());
        // The control: the right role verifies.
        let ok = sign(payload, Role::Manifest, &[&k.manifest]);
        t.verify(&ok, Role::Manifest, T0).unwrap();
        // A root signature by root keys is not a manifest either.
        let root_sig = sign_root(t.root(), &[&k.root[0], &k.root[1]]);
        assert!(t.verify(&root_sig, Role::Manifest, T0).is_err());
    }

    #[test]
    fn revoked_key_stays_revoked() {
        let k = keys();
        let mut t = trust(&k);
        let good = [&k.root[0], &k.root[1]];
        let replacement = key(11);
        let mut v2 = t.root().next();
        v2.signers[0] = delegate(&replacement, &[Role::Manifest], T0 + 5 * YEAR);
        v2.revoked = vec![k.manifest.key_id()];
        t.update_root(&sign_root(&v2, &good), T0).unwrap();
        let err = t
            .verify(&manifest(&[&k.manifest]), Role::Manifest, T0)
            .unwrap_err();
        assert_eq!(
            rejected(err),
            vec![(k.manifest.key_id(), Rejection::Revoked)]
        );
        t.verify(&manifest(&[&replacement]), Role::Manifest, T0)
            .unwrap();

        // v3 forgets the entry: still revoked on the camera.
        let mut v3 = t.root().next();
        v3.revoked.clear();
        t.update_root(&sign_root(&v3, &good), T0).unwrap();
        assert!(t.revoked().contains(&k.manifest.key_id()));
        let err = t
            .verify(&manifest(&[&k.manifest]), Role::Manifest, T0)
            .unwrap_err();
        assert_eq!(
            rejected(err),
            vec![(k.manifest.key_id(), Rejection::Revoked)]
        );

        // v4 that delegates the revoked key again is refused.
        let mut v4 = t.root().next();
        v4.signers
            .push(delegate(&k.manifest, &[Role::Manifest], T0 + YEAR));
        let err = t.update_root(&sign_root(&v4, &good), T0).unwrap_err();
        assert!(
            matches!(&err, TrustError::RevokedKeyListed { keyid, version: 4 } if *keyid == k.manifest.key_id()),
            "{err:?}"
        );
        assert_eq!(t.root().version, 3);
        // And the revocation survives persisting.
        let reloaded = Trust::from_json(&t.to_json()).unwrap();
        assert!(reloaded.revoked().contains(&k.manifest.key_id()));
    }

    #[test]
    fn expired_delegation_refused() {
        let k = keys();
        let t = trust(&k);
        let m = manifest(&[&k.manifest]);
        let expires = T0 + 5 * YEAR;
        t.verify(&m, Role::Manifest, expires - 1).unwrap();
        let err = t.verify(&m, Role::Manifest, expires).unwrap_err();
        assert_eq!(
            rejected(err),
            vec![(
                k.manifest.key_id(),
                Rejection::DelegationExpired {
                    expires,
                    effective_now: expires
                }
            )]
        );
    }

    #[test]
    fn root_expiry_checked_at_verify() {
        let k = keys();
        let t = trust(&k);
        // The announcement payload's own expiry is not ours to read: an
        // announcement that says it expired in 2000 still verifies.
        let ann = sign(
            r#"{"issued":900000000,"expires":946684800}"#.into(),
            Role::Announcement,
            &[&k.announce],
        );
        t.verify(&ann, Role::Announcement, T0).unwrap();
        // The root's expiry is.
        let expires = t.root().expires;
        let err = t.verify(&ann, Role::Announcement, expires).unwrap_err();
        assert!(
            matches!(err, TrustError::RootExpired { version: 1, expires: e, .. } if e == expires),
            "{err:?}"
        );
    }

    #[test]
    fn overlapping_signer_keys_during_rotation() {
        let k = keys();
        let mut t = trust(&k);
        let good = [&k.root[0], &k.root[1]];
        let new_manifest = key(12);
        let mut v2 = t.root().next();
        v2.signers
            .push(delegate(&new_manifest, &[Role::Manifest], T0 + 5 * YEAR));
        t.update_root(&sign_root(&v2, &good), T0).unwrap();
        t.verify(&manifest(&[&k.manifest]), Role::Manifest, T0)
            .unwrap();
        t.verify(&manifest(&[&new_manifest]), Role::Manifest, T0)
            .unwrap();

        let mut v3 = t.root().next();
        v3.signers.retain(|d| d.key != k.manifest.public_key());
        t.update_root(&sign_root(&v3, &good), T0).unwrap();
        let err = t
            .verify(&manifest(&[&k.manifest]), Role::Manifest, T0)
            .unwrap_err();
        assert_eq!(
            rejected(err),
            vec![(k.manifest.key_id(), Rejection::UnknownKey)]
        );
        t.verify(&manifest(&[&new_manifest]), Role::Manifest, T0)
            .unwrap();
    }

    #[test]
    fn duplicate_signatures_count_once() {
        let k = keys();
        let second = key(13);
        let mut root = root_v1(&k);
        root.signers
            .push(delegate(&second, &[Role::Manifest], T0 + YEAR));
        root.thresholds.manifest = 2;
        let t = Trust::from_initial_root(&sign_root(&root, &[&k.root[0], &k.root[1]])).unwrap();

        // add_signature replaces, so build the duplicate by hand.
        let mut dup = manifest(&[&k.manifest]);
        let again = dup.signatures[0].clone();
        dup.signatures.push(again);
        assert_eq!(dup.signatures.len(), 2);
        let err = t.verify(&dup, Role::Manifest, T0).unwrap_err();
        assert!(
            matches!(
                err,
                TrustError::ThresholdNotMet {
                    valid: 1,
                    need: 2,
                    ..
                }
            ),
            "{err:?}"
        );

        let both = manifest(&[&k.manifest, &second]);
        let v = t.verify(&both, Role::Manifest, T0).unwrap();
        assert_eq!(v.signers.len(), 2);

        // Same for roots: one root key twice is not 2-of-3.
        let mut signed = sign_root(&root_v1(&k), &[&k.root[0]]);
        let again = signed.signatures[0].clone();
        signed.signatures.push(again);
        assert!(Trust::from_initial_root(&signed).is_err());

        // Signing twice with add_signature keeps one entry.
        let mut m = manifest(&[&k.manifest]);
        m.add_signature(Role::Manifest, &k.manifest);
        assert_eq!(m.signatures.len(), 1);
    }

    #[test]
    fn tampered_payload_names_the_key() {
        let k = keys();
        let t = trust(&k);
        let mut m = manifest(&[&k.manifest]);
        m.payload = m.payload.replacen("1.2.3", "1.2.4", 1);
        let err = t.verify(&m, Role::Manifest, T0).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(k.manifest.key_id().as_str()), "{text}");
        assert!(text.contains("bad signature"), "{text}");
        assert_eq!(
            rejected(err),
            vec![(k.manifest.key_id(), Rejection::BadSignature)]
        );
    }

    #[test]
    fn malformed_signature_is_an_error_not_a_panic() {
        let k = keys();
        let t = trust(&k);
        for sig in ["!!not base64!!", "", "AAAA", &BASE64.encode([0u8; 65])] {
            let mut m = manifest(&[&k.manifest]);
            m.signatures[0].sig = sig.to_string();
            let err = t.verify(&m, Role::Manifest, T0).unwrap_err();
            let r = rejected(err);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].0, k.manifest.key_id());
            assert!(
                matches!(r[0].1, Rejection::MalformedSignature { .. }),
                "{sig}: {:?}",
                r[0].1
            );
        }
        // 64 bytes of zeros is well-formed but not valid.
        let mut m = manifest(&[&k.manifest]);
        m.signatures[0].sig = BASE64.encode([0u8; 64]);
        let err = t.verify(&m, Role::Manifest, T0).unwrap_err();
        assert_eq!(
            rejected(err),
            vec![(k.manifest.key_id(), Rejection::BadSignature)]
        );
    }

    #[test]
    fn too_many_signatures_refused() {
        let k = keys();
        let t = trust(&k);
        let mut m = manifest(&[&k.manifest]);
        let entry = m.signatures[0].clone();
        m.signatures.resize(MAX_SIGNATURES + 1, entry);
        assert!(matches!(
            t.verify(&m, Role::Manifest, T0),
            Err(TrustError::TooManySignatures { .. })
        ));
    }

    #[test]
    fn unknown_fields_refused() {
        let k = keys();
        let good = [&k.root[0], &k.root[1]];
        let payload = root_v1(&k).to_payload();
        assert!(Root::parse(&payload).is_ok());
        let extra = payload.replacen('{', r#"{"extra":1,"#, 1);
        let err = Trust::from_initial_root(&sign(extra, Role::Root, &good)).unwrap_err();
        assert!(
            matches!(
                err,
                TrustError::Json {
                    what: "root payload",
                    ..
                }
            ),
            "{err:?}"
        );
        // Inside a delegation too.
        let extra = payload.replacen(r#""roles""#, r#""admin":true,"roles""#, 1);
        assert_ne!(extra, payload);
        assert!(Root::parse(&extra).is_err());
        // Not a root at all.
        let other = payload.replacen(r#""type":"root""#, r#""type":"manifest""#, 1);
        assert_ne!(other, payload);
        assert!(Root::parse(&other).is_err());
        // The envelope.
        let signed = serde_json::to_value(sign(payload, Role::Root, &good)).unwrap();
        let mut obj = signed.as_object().unwrap().clone();
        obj.insert("signed_by".into(), serde_json::Value::Bool(true));
        assert!(serde_json::from_value::<Signed>(serde_json::Value::Object(obj)).is_err());
    }

    #[test]
    fn invalid_roots_refused() {
        let k = keys();
        let keys3: Vec<PublicKey> = k.root.iter().map(SecretKey::public_key).collect();
        let exp = T0 + YEAR;
        let m = || delegate(&k.manifest, &[Role::Manifest], exp);
        assert!(Root::new_v1(keys3.clone(), 0, vec![m()], exp, T0).is_err());
        assert!(Root::new_v1(keys3.clone(), 4, vec![m()], exp, T0).is_err());
        assert!(Root::new_v1(keys3.clone(), 3, vec![m()], exp, T0).is_ok());
        let mut dup = keys3.clone();
        dup.push(keys3[0]);
        assert!(Root::new_v1(dup, 2, vec![m()], exp, T0).is_err());
        let root_role = delegate(&k.manifest, &[Role::Manifest, Role::Root], exp);
        assert!(Root::new_v1(keys3.clone(), 2, vec![root_role], exp, T0).is_err());
        let root_as_signer = delegate(&k.root[0], &[Role::Manifest], exp);
        assert!(Root::new_v1(keys3.clone(), 2, vec![root_as_signer], exp, T0).is_err());
        assert!(Root::new_v1(keys3.clone(), 2, vec![m(), m()], exp, T0).is_err());
        assert!(Root::new_v1(keys3.clone(), 2, vec![m()], T0, T0).is_err());
        let no_roles = delegate(&k.manifest, &[], exp);
        assert!(Root::new_v1(keys3.clone(), 2, vec![no_roles], exp, T0).is_err());

        let mut r = Root::new_v1(keys3.clone(), 2, vec![m()], exp, T0).unwrap();
        r.revoked = vec![k.manifest.key_id()];
        assert!(r.validate().is_err());
        r.revoked = vec![k.root[2].key_id()];
        assert!(r.validate().is_err());
        r.revoked = vec![key(77).key_id()];
        r.validate().unwrap();
        r.thresholds.manifest = 2;
        assert!(r.validate().is_err(), "2 manifest signatures from 1 signer");
        r.thresholds.manifest = 0;
        assert!(r.validate().is_err());
        r.thresholds.manifest = 1;
        r.version = 0;
        assert!(r.validate().is_err());
    }

    #[test]
    fn clock_stepped_back_uses_latest_known() {
        let k = keys();
        let mut t = trust(&k);
        let seen = T0 + YEAR;
        t.observe_signed_time(seen).unwrap();
        let (now, note) = t.effective_now(T0);
        assert_eq!(now, seen);
        assert_eq!(
            note,
            ClockNote::SteppedBack {
                system: T0,
                latest_known: seen
            }
        );
        let m = manifest(&[&k.manifest]);
        let v = t.verify(&m, Role::Manifest, T0).unwrap();
        assert_eq!(v.effective_now, seen);
        assert!(matches!(v.clock, ClockNote::SteppedBack { .. }));
        assert_eq!(t.effective_now(seen + 1), (seen + 1, ClockNote::Trusted));
    }

    #[test]
    fn clock_at_1970() {
        let k = keys();
        let mut t = trust(&k);
        let fresh = manifest(&[&k.manifest]);
        let v = t.verify(&fresh, Role::Manifest, 0).unwrap();
        assert_eq!(v.effective_now, T0);
        assert_eq!(
            v.clock,
            ClockNote::SteppedBack {
                system: 0,
                latest_known: T0
            }
        );
        // Once a signed time after the delegation's expiry is seen, the
        // 1970 clock cannot revive the key.
        let mut root = t.root().next();
        root.signers[0].expires = T0 + DAY;
        t.update_root(&sign_root(&root, &[&k.root[0], &k.root[1]]), 0)
            .unwrap();
        t.verify(&fresh, Role::Manifest, 0).unwrap();
        t.observe_signed_time(T0 + 2 * DAY).unwrap();
        let err = t.verify(&fresh, Role::Manifest, 0).unwrap_err();
        assert!(matches!(
            rejected(err)[0].1,
            Rejection::DelegationExpired { .. }
        ));
    }

    #[test]
    fn clock_in_2099_makes_root_expired_and_says_so() {
        let k = keys();
        let t = trust(&k);
        let err = t
            .verify(&manifest(&[&k.manifest]), Role::Manifest, Y2099)
            .unwrap_err();
        assert!(
            matches!(
                err,
                TrustError::RootExpired {
                    system_now: Y2099,
                    latest_known: T0,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("4070908800"), "{text}");
        assert!(text.contains("clock"), "{text}");
        assert_eq!(t.latest_known(), T0);
    }

    #[test]
    fn latest_known_only_rises_from_signed_times() {
        let k = keys();
        let mut t = trust(&k);
        assert_eq!(t.latest_known(), T0);
        // Verifying with a clock far ahead does not store that time.
        t.verify(&manifest(&[&k.manifest]), Role::Manifest, T0 + 4 * YEAR)
            .unwrap();
        assert_eq!(t.latest_known(), T0);
        // A failed rotation at a future clock does not either.
        let mut v2 = t.root().next();
        v2.issued = T0 + 2 * YEAR;
        let s2 = sign_root(&v2, &[&k.root[0], &k.root[1]]);
        assert!(t.update_root(&s2, Y2099).is_err());
        assert_eq!(t.latest_known(), T0);

        t.observe_signed_time(T0 + 100).unwrap();
        assert_eq!(t.latest_known(), T0 + 100);
        t.observe_signed_time(T0 + 50).unwrap();
        assert_eq!(t.latest_known(), T0 + 100, "never decreases");
        // A signed time past the root's expiry is not believed.
        let err = t.observe_signed_time(t.root().expires).unwrap_err();
        assert!(matches!(err, TrustError::TimeBeyondRoot { .. }));
        assert_eq!(t.latest_known(), T0 + 100);
        // A rotation raises it to the new root's issued time, not to the
        // clock's.
        t.update_root(&s2, T0 + 3 * YEAR).unwrap();
        assert_eq!(t.latest_known(), T0 + 2 * YEAR);
    }

    #[test]
    fn secret_key_debug_does_not_leak() {
        let k = key(0xab);
        let debug = format!("{k:?}");
        let secret_hex = hex::encode([0xab; 32]);
        assert!(!debug.contains(&secret_hex), "{debug}");
        assert!(!debug.contains("abababab"), "{debug}");
        assert!(debug.contains(k.key_id().as_str()), "{debug}");
        // Nor does a parse error echo the text.
        let err = SecretKey::from_text(&format!("{SECRET_KEY_TAG} {secret_hex}zz")).unwrap_err();
        assert!(!err.to_string().contains("abab"), "{err}");
    }

    #[test]
    fn key_text_round_trips() {
        let k = SecretKey::generate().unwrap();
        assert_ne!(k.key_id(), SecretKey::generate().unwrap().key_id());
        let text = k.to_text();
        assert!(text.starts_with("ota-secret-key-v1 "), "{text}");
        let back = SecretKey::from_text(&text).unwrap();
        assert_eq!(back.public_key(), k.public_key());
        assert_eq!(back.to_text(), text);

        for bad in [
            "",
            "ota-secret-key-v2 00",
            &text.replace("ota-secret-key-v1", "ota-public-key-v1"),
            &text[..text.len() - 3],
            &format!("{} extra", text.trim_end()),
        ] {
            assert!(SecretKey::from_text(bad).is_err(), "{bad:?}");
        }

        let public = k.public_key();
        let json = serde_json::to_string(&public).unwrap();
        assert_eq!(json, format!("\"{}\"", public.to_hex()));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), public);
        let upper = json.to_uppercase();
        assert!(serde_json::from_str::<PublicKey>(&upper).is_err());
        assert!(PublicKey::from_hex(&public.to_hex()[..62]).is_err());
        // The all-zero point encoding is weak (small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(PublicKey::from_hex(&hex::encode(identity)).is_err());
    }

    #[test]
    fn key_id_is_sha256_of_public_key() {
        let k = key(5);
        let id = k.key_id();
        let expected = hex::encode(Sha256::digest(k.public_key().0.as_bytes()));
        assert_eq!(id.as_str(), expected);
        assert_eq!(id.as_str().len(), 64);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<KeyId>(&json.to_uppercase()).is_err());
        assert!(serde_json::from_str::<KeyId>("\"abc\"").is_err());
    }

    #[test]
    fn trust_state_round_trips_and_is_rechecked() {
        let k = keys();
        let mut t = trust(&k);
        t.observe_signed_time(T0 + 7).unwrap();
        let json = t.to_json();
        let back = Trust::from_json(&json).unwrap();
        assert_eq!(back, t);

        // A state whose root lost a signature is refused.
        let mut state: serde_json::Value = serde_json::from_str(&json).unwrap();
        state["root"]["signatures"].as_array_mut().unwrap().pop();
        assert!(Trust::from_json(&state.to_string()).is_err());
        // One that forgot a revocation the root carries is refused.
        let mut root = root_v1(&k);
        root.revoked = vec![key(50).key_id()];
        let t = Trust::from_initial_root(&sign_root(&root, &[&k.root[0], &k.root[1]])).unwrap();
        let mut state: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        state["revoked"] = serde_json::json!([]);
        let err = Trust::from_json(&state.to_string()).unwrap_err();
        assert!(matches!(err, TrustError::BadState { .. }), "{err:?}");
    }
}
