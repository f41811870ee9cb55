//! Every shipped profile validates; a wrong profile is refused with the
//! field named, and every problem at once.
#![allow(clippy::unwrap_used)]

use boards::{NpuApi, Profile, Soc, load_all, shipped_dir};

#[test]
fn every_shipped_profile_validates() {
    let all = load_all(&shipped_dir()).unwrap();
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["qemu-arm64", "rk3568", "rk3588", "rv1106", "rv1126"],
        "the boards the firmware ships on"
    );
    let rv1106 = all.iter().find(|p| p.soc == Soc::Rv1106).unwrap();
    assert_eq!(rv1106.npu.api, NpuApi::ZeroCopy);
    let rk3588 = all.iter().find(|p| p.soc == Soc::Rk3588).unwrap();
    assert_eq!(rk3588.npu.cores, [0, 1, 2]);
    for p in &all {
        println!(
            "{:<11} {:?} {} {}x{}@{} npu {:?} cores {:?}",
            p.name,
            p.soc,
            p.target,
            p.capture.width,
            p.capture.height,
            p.capture.fps,
            p.npu.api,
            p.npu.cores
        );
    }
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(shipped_dir().join(format!("{name}.toml"))).unwrap()
}

fn refused(name: &str, text: &str) -> String {
    Profile::parse(name, text).unwrap_err().join("\n")
}

#[test]
fn unknown_fields_and_wrong_types_name_the_field() {
    let text = shipped("rk3588").replace("fps = 15", "fps = 15\nframerate = 30");
    let e = refused("rk3588", &text);
    assert!(e.contains("capture") && e.contains("framerate"), "{e}");
    let text = shipped("rk3588").replace("width = 1920", "width = \"1920\"");
    let e = refused("rk3588", &text);
    assert!(e.contains("capture.width"), "{e}");
    let text = shipped("rk3588").replace("soc = \"rk3588\"", "soc = \"rk9999\"");
    let e = refused("rk3588", &text);
    assert!(e.contains("soc"), "{e}");
}

#[test]
fn inconsistent_profiles_report_every_problem_with_its_field() {
    let text = shipped("rv1106")
        .replace("api = \"zero-copy\"", "api = \"inputs-set\"")
        .replace("cores = [0]", "cores = [0, 2]")
        .replace(
            "target = \"armv7-unknown-linux-uclibceabihf\"",
            "target = \"aarch64-unknown-linux-gnu\"",
        )
        .replace("fps = 10", "fps = 0")
        .replace("night_below = 200", "night_below = 900")
        .replace(
            "rootfs = [\"/dev/mtdblock3\", \"/dev/mtdblock4\"]",
            "rootfs = [\"/dev/mtdblock3\", \"/dev/mtdblock3\"]",
        )
        .replace("offsets = [0x0, 0x20000]", "offsets = [0x0, 0x4000]");
    let e = refused("rv1106", &text);
    for field in [
        "npu.api",
        "npu.cores: core 2",
        "target:",
        "capture.fps",
        "gpio.light_sensor",
        "partitions: /dev/mtdblock3 is used twice",
        "uboot_env.offsets",
    ] {
        assert!(e.contains(field), "{field} missing from:\n{e}");
    }
    assert_eq!(e.lines().count(), 7, "{e}");
}

#[test]
fn a_profile_must_match_its_file_name_and_npu_settings_its_soc() {
    let e = refused("rk3568", &shipped("rk3588"));
    assert!(
        e.contains("name: \"rk3588\" differs from the file name \"rk3568\""),
        "{e}"
    );
    let text = shipped("qemu-arm64").replace("api = \"none\"", "api = \"inputs-set\"");
    let e = refused("qemu-arm64", &text);
    assert!(e.contains("npu.api: a Virt has no NPU"), "{e}");
    let text = shipped("rk3568").replace("runtime = \"librknnrt.so\"\n", "");
    let e = refused("rk3568", &text);
    assert!(e.contains("npu.runtime"), "{e}");
}

#[test]
fn a_missing_profile_names_its_path() {
    let e = Profile::find(&shipped_dir(), "rk9999")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rk9999.toml"), "{e}");
}

#[test]
fn built_in_profiles_are_the_shipped_files() {
    for p in load_all(&shipped_dir()).expect("shipped profiles") {
        assert_eq!(boards::builtin(&p.name).expect("built in"), p);
    }
    let e = boards::builtin("rk9999").expect_err("unknown").to_string();
    assert!(
        e.contains("rk9999") && e.contains("rk3588") && e.contains("rv1106"),
        "{e}"
    );
}
