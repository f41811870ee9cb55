//! The update agent's configuration for file-backed slots, shared by the
//! device's and the vendor's command-line tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// An agent config whose environment copies and app slots are the files
/// `env` and `slots`, its state under `d`.
pub fn agent_toml(d: &Path, slots: &[PathBuf; 2], env: &[PathBuf; 2]) -> String {
    format!(
        r#"camera_id = "cam-1"
store_id = "s1"
state_dir = "{state}"
root_file = "{root}"
run_dir = "{run}"
version = "1.0.0"
allowed_urls = ["https://updates.example/"]

[broker]
host = "127.0.0.1"
port = 1883

[layout]
board = "rk3588"

[layout.env]
size = 8192
copies = [{{ path = "{e0}" }}, {{ path = "{e1}" }}]

[layout.slots]
app = ["{s0}", "{s1}"]
"#,
        state = d.join("state").display(),
        root = d.join("root.json").display(),
        run = d.join("run").display(),
        e0 = env[0].display(),
        e1 = env[1].display(),
        s0 = slots[0].display(),
        s1 = slots[1].display(),
    )
}
