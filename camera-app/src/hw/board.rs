//! The camera a board profile describes (`[capture]`), as camera-app's
//! source configuration, for `camera-app run --board NAME`.

use crate::config::SourceConfig;

#[derive(Debug, thiserror::Error)]
pub enum BoardCaptureError {
    #[error("board {board}: its profile names no capture device (a board without a camera)")]
    NoDevice { board: String },
    #[error("board {board}: its profile names no capture format")]
    NoFormat { board: String },
    #[error("board {board}: capture settings refused: {message}")]
    Invalid { board: String, message: String },
}

/// The V4L2 source of `profile`: its device, its preferred (first)
/// format, its size and frame rate; buffers and timeout at their defaults.
/// (Single- or multi-planar is found from the device's capabilities.)
pub fn capture_source(profile: &boards::Profile) -> Result<SourceConfig, BoardCaptureError> {
    let board = profile.name.clone();
    let c = &profile.capture;
    let device = c
        .device
        .as_ref()
        .ok_or_else(|| BoardCaptureError::NoDevice {
            board: board.clone(),
        })?;
    let format = match c.formats.first() {
        Some(boards::PixelFormat::Nv12) => "nv12",
        Some(boards::PixelFormat::Yuyv) => "yuyv",
        Some(boards::PixelFormat::Mjpeg) => "mjpeg",
        None => return Err(BoardCaptureError::NoFormat { board }),
    };
    let mut t = toml::Table::new();
    t.insert("kind".into(), "v4l2".into());
    t.insert("device".into(), device.to_string_lossy().as_ref().into());
    t.insert("format".into(), format.into());
    for (k, v) in [("width", c.width), ("height", c.height), ("fps", c.fps)] {
        t.insert(k.into(), i64::from(v).into());
    }
    // Through the config's own deserialiser, so that the defaults of the
    // fields the profile leaves out are the config file's.
    t.try_into()
        .map_err(|e: toml::de::Error| BoardCaptureError::Invalid {
            board,
            message: e.message().to_string(),
        })
}

/// The source for a run with `--board`: a configured V4L2 camera or file
/// source stands (someone chose it); the synthetic placeholder of the
/// built-in configuration gives way to the board's camera.
pub fn source_with_board(
    configured: &SourceConfig,
    profile: &boards::Profile,
) -> Result<SourceConfig, BoardCaptureError> {
    match configured {
        SourceConfig::Synthetic(_) => capture_source(profile),
        SourceConfig::V4l2(_) | SourceConfig::Files(_) => Ok(configured.clone()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::capture::PixelFormat;
    use crate::config::Config;

    fn shipped(name: &str) -> boards::Profile {
        boards::Profile::find(&boards::shipped_dir(), name).unwrap()
    }

    #[test]
    fn the_rk3588_camera_is_the_isp_main_path() {
        let SourceConfig::V4l2(v) = capture_source(&shipped("rk3588")).unwrap() else {
            panic!("v4l2 expected")
        };
        assert_eq!(v.device, Path::new("/dev/video11"));
        assert_eq!(v.format, PixelFormat::Nv12);
        assert_eq!((v.width, v.height, v.fps), (1920, 1080, 15));
        // Defaults as in a config file that leaves them out.
        assert_eq!((v.buffers, v.timeout_ms), (4, 2000));

        let SourceConfig::V4l2(v) = capture_source(&shipped("rv1106")).unwrap() else {
            panic!("v4l2 expected")
        };
        assert_eq!((v.width, v.height, v.fps), (1280, 720, 10));
    }

    #[test]
    fn the_qemu_board_captures_from_vivid() {
        let SourceConfig::V4l2(v) = capture_source(&shipped("qemu-arm64")).unwrap() else {
            panic!("v4l2 expected")
        };
        assert_eq!(v.device, Path::new("/dev/video0"));
        assert_eq!(v.format, PixelFormat::Nv12);
    }

    #[test]
    fn a_board_without_a_camera_says_so() {
        let mut profile = shipped("qemu-arm64");
        profile.capture.device = None;
        let e = capture_source(&profile).unwrap_err();
        assert!(matches!(e, BoardCaptureError::NoDevice { .. }), "{e:?}");
        assert!(e.to_string().contains("qemu-arm64"), "{e}");
    }

    #[test]
    fn only_the_synthetic_placeholder_gives_way_to_the_board() {
        let builtin = Config::default_config().unwrap();
        assert!(matches!(builtin.source, SourceConfig::Synthetic(_)));
        let got = source_with_board(&builtin.source, &shipped("rk3568")).unwrap();
        assert_eq!(got, capture_source(&shipped("rk3568")).unwrap());

        let usb: SourceConfig = toml::from_str(
            "kind = \"v4l2\"\ndevice = \"/dev/video2\"\nformat = \"mjpeg\"\nwidth = 640\nheight = 480\nfps = 30\n",
        )
        .unwrap();
        assert_eq!(source_with_board(&usb, &shipped("rk3568")).unwrap(), usb);
    }
}
