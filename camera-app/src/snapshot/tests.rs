use super::*;
use crate::capture::Timestamp;

const CONFIG: &str = r#"
version = 7
[[lines]]
name = "door"
points = [[0.1, 0.5], [0.9, 0.5]]
in_side = "left"
[[lines]]
name = "street"
points = [[0.1, 0.8], [0.45, 0.8]]
in_side = "right"
[[zones]]
name = "till"
kind = "queue"
service_per_min = 1.0
polygon = [[0.6, 0.1], [0.9, 0.1], [0.9, 0.4], [0.6, 0.4]]
"#;

fn enabled() -> SnapshotOptions {
    SnapshotOptions {
        enabled: true,
        ..SnapshotOptions::default()
    }
}

fn frame(format: PixelFormat, w: u32, h: u32, stride: u32, data: Vec<u8>) -> Frame {
    Frame {
        seq: 1,
        timestamp: Timestamp(0),
        width: w,
        height: h,
        stride,
        format,
        data,
    }
}

fn rgb_frame(img: &image::RgbImage) -> Frame {
    let (w, h) = img.dimensions();
    frame(PixelFormat::Rgb24, w, h, w * 3, img.as_raw().clone())
}

/// BT.601 limited-range NV12 of an RGB image (chroma averaged over 2×2).
fn nv12(img: &image::RgbImage) -> Frame {
    let (w, h) = img.dimensions();
    let f = |p: &image::Rgb<u8>| p.0.map(f32::from);
    let mut data: Vec<u8> = img
        .pixels()
        .map(|p| {
            let [r, g, b] = f(p);
            (16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0).round() as u8
        })
        .collect();
    for y in (0..h).step_by(2) {
        for x in (0..w).step_by(2) {
            let mut acc = [0.0f32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = f(img.get_pixel((x + dx).min(w - 1), (y + dy).min(h - 1)));
                for c in 0..3 {
                    acc[c] += p[c] / 4.0;
                }
            }
            let [r, g, b] = acc;
            data.push((128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0).round() as u8);
            data.push((128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0).round() as u8);
        }
    }
    frame(PixelFormat::Nv12, w, h, w, data)
}

fn decode(jpeg: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .expect("a JPEG")
        .into_rgb8()
}

/// Mean absolute difference to the right and lower neighbours (luma-ish:
/// the sum of channels) over a rectangle: high-frequency energy.
fn hf_energy(img: &image::RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> f64 {
    let v = |x, y| -> i32 { img.get_pixel(x, y).0.iter().map(|&c| i32::from(c)).sum() };
    let mut sum = 0u64;
    let mut n = 0u64;
    for y in y0..y1 - 1 {
        for x in x0..x1 - 1 {
            sum += u64::from(v(x, y).abs_diff(v(x + 1, y)) + v(x, y).abs_diff(v(x, y + 1)));
            n += 1;
        }
    }
    sum as f64 / n as f64
}

fn near(got: [u8; 3], want: [u8; 3], tol: u8) -> bool {
    got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= tol)
}

/// A store scene with a fine-textured "face" patch (random pixels) where
/// the person will be.
fn textured(w: u32, h: u32) -> image::RgbImage {
    let mut img = scenegen::render::background(w, h, 3);
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    for y in h / 4..h / 4 + h / 3 {
        for x in w / 4..w / 4 + w / 8 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = (s & 0xff) as u8;
            img.put_pixel(x, y, image::Rgb([v, v / 2, 255 - v]));
        }
    }
    img
}

#[test]
fn a_1080p_frame_becomes_a_jpeg_at_max_width_within_the_limit() {
    let img = textured(1920, 1080);
    let analytics = AnalyticsConfig::parse(CONFIG).expect("config");
    let person = BBox {
        x1: 480.0,
        y1: 270.0,
        x2: 720.0,
        y2: 630.0,
    };
    let jpeg = render(&nv12(&img), Some(&analytics), &[person], &enabled()).expect("snapshot");
    let out = decode(&jpeg);
    assert_eq!(out.dimensions(), (1280, 720));
    // A real picture at quality 80: tens of kilobytes, under 256 KiB.
    assert!(
        (20_000..=256 * 1024).contains(&jpeg.len()),
        "{} bytes",
        jpeg.len()
    );
}

#[test]
fn people_are_pixelated_and_the_rest_is_not() {
    let (w, h) = (1280, 720);
    let img = textured(w, h);
    let person = BBox {
        x1: (w / 4) as f32,
        y1: (h / 4) as f32,
        x2: (w / 4 + w / 8) as f32,
        y2: (h / 4 + h / 3) as f32,
    };
    let plain = decode(&render(&rgb_frame(&img), None, &[], &enabled()).expect("plain"));
    let hidden = decode(&render(&rgb_frame(&img), None, &[person], &enabled()).expect("blurred"));
    let (x0, y0, x1, y1) = (w / 4, h / 4, w / 4 + w / 8, h / 4 + h / 3);
    let before = hf_energy(&plain, x0, y0, x1, y1);
    let after = hf_energy(&hidden, x0, y0, x1, y1);
    println!("high-frequency energy in the box: {before:.1} -> {after:.1}");
    assert!(before > 100.0, "the patch is textured: {before}");
    assert!(after < before * 0.1, "{before} -> {after}");
    // Far from the box (and its margin) nothing changed.
    let (a, b) = (
        hf_energy(&plain, 800, 400, 1200, 700),
        hf_energy(&hidden, 800, 400, 1200, 700),
    );
    assert!((a - b).abs() < 0.02 * a, "{a} vs {b}");
    // The margin (36 px here) is pixelated too: a strip above the box,
    // inside the first row of blocks (30 px, starting 36 px above).
    let strip = (y0 - 32, y0 - 10);
    let (a, b) = (
        hf_energy(&plain, x0, strip.0, x1, strip.1),
        hf_energy(&hidden, x0, strip.0, x1, strip.1),
    );
    assert!(b < 0.5 * a, "margin {a} -> {b}");
}

#[test]
fn lines_arrows_and_zones_are_drawn_in_their_colours() {
    let (w, h) = (1280u32, 720u32);
    let grey = image::RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
    let analytics = AnalyticsConfig::parse(CONFIG).expect("config");
    let out =
        decode(&render(&rgb_frame(&grey), Some(&analytics), &[], &enabled()).expect("render"));
    let legend = legend(&analytics);
    assert_eq!(
        legend
            .iter()
            .map(|e| (e.name.as_str(), e.kind))
            .collect::<Vec<_>>(),
        vec![("door", "line"), ("street", "line"), ("till", "zone")]
    );
    let (door, street, till) = (legend[0].rgb, legend[1].rgb, legend[2].rgb);
    let px = |x: f32, y: f32| {
        out.get_pixel((x * w as f32) as u32, (y * h as f32) as u32)
            .0
    };
    let at = |x: f32, y: f32, dy: i32| {
        out.get_pixel((x * w as f32) as u32, ((y * h as f32) as i32 + dy) as u32)
            .0
    };
    const TOL: u8 = 40;
    const GREY: [u8; 3] = [128, 128, 128];
    // On the door line, and not 20 px off it.
    assert!(near(px(0.3, 0.5), door, TOL), "{:?}", px(0.3, 0.5));
    assert!(near(at(0.3, 0.5, 20), GREY, 6));
    // Its arrow points up (in is on the left walking left to right)...
    assert!(
        near(at(0.5, 0.5, -16), door, TOL),
        "{:?}",
        at(0.5, 0.5, -16)
    );
    assert!(near(at(0.5, 0.5, 16), GREY, 6), "{:?}", at(0.5, 0.5, 16));
    // ...and the street line's points down.
    assert!(near(px(0.2, 0.8), street, TOL));
    assert!(
        near(at(0.275, 0.8, 16), street, TOL),
        "{:?}",
        at(0.275, 0.8, 16)
    );
    assert!(near(at(0.275, 0.8, -16), GREY, 6));
    // The zone's outline, its inside untouched.
    assert!(near(px(0.75, 0.1), till, TOL), "{:?}", px(0.75, 0.1));
    assert!(near(px(0.9, 0.25), till, TOL), "{:?}", px(0.9, 0.25));
    assert!(near(px(0.75, 0.25), GREY, 6));
}

#[test]
fn a_small_budget_shrinks_the_image_and_a_tiny_one_is_too_large() {
    let img = textured(1920, 1080);
    let f = nv12(&img);
    let opts = SnapshotOptions {
        max_bytes: 15_000,
        ..enabled()
    };
    let jpeg = render(&f, None, &[], &opts).expect("fits after shrinking");
    assert!(jpeg.len() <= 15_000, "{}", jpeg.len());
    let (w, h) = decode(&jpeg).dimensions();
    assert!((MIN_WIDTH..1280).contains(&w), "{w}x{h}");
    assert_eq!(h, scaled_height(1920, 1080, w));

    let opts = SnapshotOptions {
        max_bytes: 500,
        ..enabled()
    };
    match render(&f, None, &[], &opts) {
        Err(SnapshotError::TooLarge {
            max_bytes,
            bytes,
            width,
            quality,
            ..
        }) => {
            assert_eq!((max_bytes, quality), (500, MIN_QUALITY));
            assert!(bytes > 500);
            assert!(
                (MIN_WIDTH..MIN_WIDTH * 4 / 3 + 1).contains(&width),
                "{width}"
            );
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn snapshots_are_off_by_default_and_options_are_checked() {
    let grey = image::RgbImage::from_pixel(64, 48, image::Rgb([90, 90, 90]));
    let e = render(&rgb_frame(&grey), None, &[], &SnapshotOptions::default()).expect_err("off");
    assert!(matches!(e, SnapshotError::Disabled));
    let bad = SnapshotOptions {
        quality: 0,
        max_width: 20,
        ..enabled()
    };
    let e = render(&rgb_frame(&grey), None, &[], &bad).expect_err("invalid");
    let msg = e.to_string();
    assert!(
        msg.contains("quality: 0") && msg.contains("max_width: 20"),
        "{msg}"
    );

    let o: SnapshotOptions = toml::from_str("enabled = true\nmax_bytes = 100000\n").expect("toml");
    assert_eq!(
        (o.enabled, o.max_bytes, o.quality, o.max_width),
        (true, 100_000, 80, 1280)
    );
    for text in ["colorimetry = \"bt709-full\"\n", "size = 3\n"] {
        let e = toml::from_str::<SnapshotOptions>(text).expect_err(text);
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}

#[test]
fn every_frame_format_keeps_its_colours() {
    let (w, h) = (64u32, 48u32);
    let red = image::RgbImage::from_pixel(w, h, image::Rgb([200, 40, 40]));
    let bgr: Vec<u8> = red
        .pixels()
        .flat_map(|p| [p.0[2], p.0[1], p.0[0]])
        .collect();
    let nv = nv12(&red);
    // YUYV from the NV12 planes: Y0 U Y1 V.
    let (y_plane, uv) = nv.data.split_at((w * h) as usize);
    let mut yuyv = Vec::new();
    for y in 0..h as usize {
        for x in (0..w as usize).step_by(2) {
            let c = (y / 2) * w as usize + x;
            yuyv.extend_from_slice(&[
                y_plane[y * w as usize + x],
                uv[c],
                y_plane[y * w as usize + x + 1],
                uv[c + 1],
            ]);
        }
    }
    let mut mjpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut mjpeg, 95)
        .encode(red.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("jpeg");
    let frames = [
        rgb_frame(&red),
        frame(PixelFormat::Bgr24, w, h, w * 3, bgr),
        nv,
        frame(PixelFormat::Yuyv, w, h, w * 2, yuyv),
        frame(PixelFormat::Mjpeg, w, h, 0, mjpeg),
    ];
    for f in &frames {
        let out = decode(&render(f, None, &[], &enabled()).expect("render"));
        assert_eq!(out.dimensions(), (w, h));
        let p = out.get_pixel(w / 2, h / 2).0;
        assert!(near(p, [200, 40, 40], 8), "{}: {p:?}", f.format);
    }
    let mut broken = frames[4].clone();
    broken.data.truncate(50);
    let e = render(&broken, None, &[], &enabled()).expect_err("corrupt");
    assert!(
        e.to_string().starts_with("frame 1: cannot decode mjpeg"),
        "{e}"
    );
}

#[test]
fn boxes_off_the_frame_or_degenerate_are_harmless() {
    let grey = image::RgbImage::from_pixel(320, 240, image::Rgb([90, 90, 90]));
    let boxes = [
        BBox {
            x1: -50.0,
            y1: -50.0,
            x2: 40.0,
            y2: 60.0,
        },
        BBox {
            x1: 300.0,
            y1: 200.0,
            x2: 900.0,
            y2: 900.0,
        },
        BBox {
            x1: 10.0,
            y1: 10.0,
            x2: 10.0,
            y2: 50.0,
        },
        BBox {
            x1: f32::NAN,
            y1: 0.0,
            x2: 5.0,
            y2: 5.0,
        },
        BBox {
            x1: 50.0,
            y1: 50.0,
            x2: 20.0,
            y2: 20.0,
        },
    ];
    let out = decode(&render(&rgb_frame(&grey), None, &boxes, &enabled()).expect("render"));
    assert_eq!(out.dimensions(), (320, 240));
}

#[test]
fn facings_are_outlined_in_the_colour_of_their_state() {
    let (w, h) = (1280u32, 720u32);
    let grey = image::RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
    let analytics = AnalyticsConfig::parse(
        "version = 2\n[[shelves]]\nname = \"s\"\n\
         polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.5], [0.1, 0.5]]\ngrid = [1, 4]\n\
         front = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.8], [0.1, 0.8]]\n",
    )
    .expect("config");
    let states = vec![
        Some(Stock::Stocked),
        Some(Stock::Low),
        Some(Stock::Empty),
        None,
    ];
    let shelves = vec![(analytics.shelves[0].clone(), states)];
    let out = decode(
        &render_with_shelves(
            &rgb_frame(&grey),
            Some(&analytics),
            &[],
            &shelves,
            &enabled(),
        )
        .expect("render"),
    );
    let px = |x: f32, y: f32| {
        out.get_pixel((x * w as f32) as u32, (y * h as f32) as u32)
            .0
    };
    const TOL: u8 = 40;
    // The top edge of each facing (0.2 wide from 0.1), in its colour.
    assert!(near(px(0.2, 0.1), [40, 200, 70], TOL), "{:?}", px(0.2, 0.1));
    assert!(near(px(0.4, 0.1), [255, 170, 0], TOL), "{:?}", px(0.4, 0.1));
    assert!(near(px(0.6, 0.1), [235, 30, 30], TOL), "{:?}", px(0.6, 0.1));
    assert!(
        near(px(0.8, 0.1), [150, 150, 150], TOL),
        "{:?}",
        px(0.8, 0.1)
    );
    // The empty facing is crossed out (its centre), the others are not.
    assert!(near(px(0.6, 0.3), [235, 30, 30], TOL), "{:?}", px(0.6, 0.3));
    assert!(near(px(0.2, 0.3), [128, 128, 128], 6), "{:?}", px(0.2, 0.3));
    // The front zone's bottom edge, dotted in blue.
    assert!(
        near(px(0.22, 0.8), [60, 140, 255], TOL),
        "{:?}",
        px(0.22, 0.8)
    );
}
