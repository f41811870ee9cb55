//! The bundle file: a signed manifest, then the images, back to back.
//!
//! ```text
//! "RCOTA\0\x01\n"      8 bytes, magic and format version 1
//! header length        u32, little endian, at most MAX_HEADER bytes
//! header               JSON of a `trust::Signed` whose payload is the manifest
//! image 0 … image n-1  exactly `length` bytes each, in manifest order
//! ```
//!
//! Why not tar or squashfs: the reader must check the signature before it
//! touches anything else, and stream images straight to their slots in one
//! pass (over HTTP too), with no names to traverse and no index to trust.
//! The manifest is small (one sha256 per MiB), so it fits in the header.

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::manifest::{Component, Digest, Image, MAX_MANIFEST_BYTES};
use crate::trust::Signed;

pub const MAGIC: &[u8; 8] = b"RCOTA\0\x01\n";
/// The signed header: the manifest and its signatures.
pub const MAX_HEADER: u32 = (MAX_MANIFEST_BYTES + 64 * 1024) as u32;

/// Why a bundle header was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a camera update bundle (bad magic {found:02x?})")]
    Magic { found: Vec<u8> },
    #[error("bundle header of {len} bytes is over the {max}-byte limit")]
    HeaderTooLarge { len: u32, max: u32 },
    #[error("bundle ends inside its header")]
    Truncated,
    #[error("bundle header is not a signed document: {0}")]
    Header(String),
    #[error("reading the bundle: {0}")]
    Io(#[from] io::Error),
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> Result<(), BundleError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => BundleError::Truncated,
        _ => BundleError::Io(e),
    })
}

/// Read and parse the header; the reader is left at the first image.
pub fn read_header(r: &mut dyn Read) -> Result<Signed, BundleError> {
    let mut magic = [0u8; 8];
    read_full(r, &mut magic)?;
    if &magic != MAGIC {
        return Err(BundleError::Magic {
            found: magic.to_vec(),
        });
    }
    let mut len = [0u8; 4];
    read_full(r, &mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(BundleError::HeaderTooLarge {
            len,
            max: MAX_HEADER,
        });
    }
    let mut header = vec![0u8; len as usize];
    read_full(r, &mut header)?;
    serde_json::from_slice(&header).map_err(|e| BundleError::Header(e.to_string()))
}

/// Write a bundle: the header, then each image file in manifest order.
pub fn write(out: &mut dyn Write, header: &Signed, images: &[&Path]) -> io::Result<u64> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|l| *l <= MAX_HEADER)
        .ok_or_else(|| io::Error::other("signed manifest is too large for a bundle header"))?;
    out.write_all(MAGIC)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&json)?;
    let mut total = 12 + u64::from(len);
    for p in images {
        let mut f = std::fs::File::open(p)?;
        total += io::copy(&mut f, out)?;
    }
    out.flush()?;
    Ok(total)
}

/// What `ota-vendor sign` puts in a manifest besides the images.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub security_counter: u64,
    pub issued: u64,
    pub compatible: Vec<String>,
    pub chunk_size: u32,
}

/// Build, sign and write a bundle from image files; returns the manifest.
pub fn create(
    out: &Path,
    release: &Release,
    images: &[(Component, &Path)],
    keys: &[&crate::trust::SecretKey],
) -> io::Result<crate::manifest::Manifest> {
    let mut described = Vec::new();
    for (c, p) in images {
        described.push(describe(p, *c, release.chunk_size)?);
    }
    let manifest = crate::manifest::Manifest {
        kind: "manifest".into(),
        version: release.version.clone(),
        security_counter: release.security_counter,
        issued: release.issued,
        compatible: release.compatible.clone(),
        images: described,
    };
    let problems = manifest.problems();
    if !problems.is_empty() {
        return Err(io::Error::other(problems.join("; ")));
    }
    let signed = crate::trust::sign(manifest.to_payload(), crate::trust::Role::Manifest, keys);
    let paths: Vec<&Path> = images.iter().map(|(_, p)| *p).collect();
    let mut f = io::BufWriter::new(std::fs::File::create(out)?);
    write(&mut f, &signed, &paths)?;
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(manifest)
}

/// Describe an image file for a manifest: its length, sha256 and chunk
/// hashes.
pub fn describe(path: &Path, component: Component, chunk_size: u32) -> io::Result<Image> {
    let mut f = std::fs::File::open(path)?;
    let mut whole = Sha256::new();
    let mut chunks = Vec::new();
    let mut buf = vec![0u8; chunk_size as usize];
    let mut length = 0u64;
    loop {
        let n = read_up_to(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        whole.update(&buf[..n]);
        chunks.push(Digest(Sha256::digest(&buf[..n]).into()));
        length += n as u64;
        if n < buf.len() {
            break;
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| component.name().into());
    Ok(Image {
        name,
        component,
        length,
        sha256: Digest(whole.finalize().into()),
        chunk_size,
        chunks,
    })
}

/// Fill `buf` unless the reader ends first; returns the bytes read.
pub fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
