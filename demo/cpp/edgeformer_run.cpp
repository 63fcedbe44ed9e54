// edgeformer_run: run an edgeformer_mm ncnn deployment bundle on one image.
//
//   edgeformer_run BUNDLE_DIR IMAGE [--out OUT] [--threads N]
//                  [--ncnn-fp16 bundle|on|off] [--dump-input FILE]
//
// BUNDLE_DIR holds bundle.json and end2end.param/.bin (written by
// tools/deploy.py --backend ncnn). The preprocessing is read from
// bundle.json and reproduces the Python runtime (edgeformer_runtime, which
// uses cv2 as mmcv does): the bilinear and nearest resizes below are the
// integer algorithms of OpenCV's cv::resize for 8-bit images as it runs on
// x86, so the network input is bit-identical to the Python runtime's on x86
// for lossless images (PNG, BMP, PPM), on any machine. (cv2 on aarch64
// resizes with its own ARM code: up to 2 levels apart in ~3% of the values.)
// JPEG files are decoded by stb_image, whose decoder is not libjpeg's:
// pixels may differ by a few levels, and EXIF orientation is not applied.
//
// Prints one JSON object, the same as `edgeformer-run` (the Python CLI):
//   classification {"task":"classification","pred_label":L,"pred_score":S,
//                   "top5":{"labels":[...],"scores":[...]},"pred_class":NAME}
//   detection      {"task":"detection","detections":[{"bbox":[x1,y1,x2,y2],
//                   "score":S,"label":L,"class":NAME}, ...]}  (image pixels)
//   segmentation   {"task":"segmentation","out":OUT,"shape":[H,W]}; the
//                   label map (the logits without the padding, resized to the
//                   image as F.interpolate(mode='bilinear'), then argmax) is
//                   written to OUT (.png, or .pgm), one byte per pixel.
// ("pred_class" and "class" only when bundle.json has class names.)
// --ncnn-fp16: fp16 storage and arithmetic where the CPU has them ("on",
// ncnn's default), fp32 throughout ("off"), or fp16 only for a bundle of
// precision fp16 ("bundle", the default).
// --dump-input writes the preprocessed network input to FILE as raw float32
// (C x H x W, native byte order), to compare it with the Python runtime's.
// Exit status: 0 success, 1 error, 2 usage error.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <net.h>  // ncnn (its CMake target adds include/ncnn)

#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

using json = nlohmann::json;

namespace {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An 8-bit image, height x width x channels, interleaved (as cv::Mat).
struct Image {
  int h = 0, w = 0, c = 0;
  std::vector<uint8_t> data;
  uint8_t *row(int y) { return data.data() + static_cast<size_t>(y) * w * c; }
  const uint8_t *row(int y) const {
    return data.data() + static_cast<size_t>(y) * w * c;
  }
};

// A float tensor, channels x height x width (planar, as the network input).
struct Tensor {
  int c = 0, h = 0, w = 0;
  std::vector<float> data;
  float *plane(int k) { return data.data() + static_cast<size_t>(k) * h * w; }
  const float *plane(int k) const {
    return data.data() + static_cast<size_t>(k) * h * w;
  }
};

// Where a point of the original image lies in the current one:
// x' = x * sx - ox, y' = y * sy - oy.
struct Geometry {
  double sx = 1, sy = 1, ox = 0, oy = 0;
  int valid_h = 0, valid_w = 0;  // the image part of the input (before pad)
};

// ---- resizing, as OpenCV's cv::resize on 8-bit images ---------------------

// cv::resize(INTER_LINEAR) for CV_8U: fixed-point coefficients with 11
// fractional bits, a horizontal pass into int, and the vertical pass of
// OpenCV's SIMD kernel (VResizeLinearVec_32s8u), which it uses for every
// pixel: ((b0 * (s0 >> 4)) >> 16) + ((b1 * (s1 >> 4)) >> 16) + 2) >> 2.
// Source columns are clamped to the image with the weight moved to the edge
// pixel; source rows are clamped without changing the weights (as OpenCV).
Image resize_bilinear(const Image &src, int dw, int dh) {
  const int kBits = 11, kScale = 1 << kBits;
  const int sw = src.w, sh = src.h, cn = src.c;
  auto coefficient = [&](float f) {
    return static_cast<int>(std::nearbyint(f * kScale));  // saturate_cast
  };
  std::vector<int> xofs(dw), alpha(2 * dw);
  const double scale_x = 1.0 / (static_cast<double>(dw) / sw);
  for (int dx = 0; dx < dw; ++dx) {
    float fx = static_cast<float>((dx + 0.5) * scale_x - 0.5);
    int sx = static_cast<int>(std::floor(fx));
    fx -= sx;
    if (sx < 0) fx = 0, sx = 0;
    if (sx >= sw - 1) fx = 0, sx = sw - 1;
    xofs[dx] = sx;
    alpha[2 * dx] = coefficient(1.f - fx);
    alpha[2 * dx + 1] = coefficient(fx);
  }
  std::vector<int> yofs(dh), beta(2 * dh);
  const double scale_y = 1.0 / (static_cast<double>(dh) / sh);
  for (int dy = 0; dy < dh; ++dy) {
    float fy = static_cast<float>((dy + 0.5) * scale_y - 0.5);
    int sy = static_cast<int>(std::floor(fy));
    fy -= sy;
    yofs[dy] = sy;
    beta[2 * dy] = coefficient(1.f - fy);
    beta[2 * dy + 1] = coefficient(fy);
  }
  // Horizontal pass of every source row (int, 11 fractional bits).
  std::vector<int> hrows(static_cast<size_t>(sh) * dw * cn);
  for (int y = 0; y < sh; ++y) {
    const uint8_t *s = src.row(y);
    int *d = hrows.data() + static_cast<size_t>(y) * dw * cn;
    for (int dx = 0; dx < dw; ++dx) {
      const int x0 = xofs[dx], x1 = std::min(x0 + 1, sw - 1);
      const int a0 = alpha[2 * dx], a1 = alpha[2 * dx + 1];
      for (int k = 0; k < cn; ++k)
        d[dx * cn + k] = s[x0 * cn + k] * a0 + s[x1 * cn + k] * a1;
    }
  }
  Image dst{dh, dw, cn, std::vector<uint8_t>(static_cast<size_t>(dh) * dw * cn)};
  for (int dy = 0; dy < dh; ++dy) {
    const int y0 = std::clamp(yofs[dy], 0, sh - 1);
    const int y1 = std::clamp(yofs[dy] + 1, 0, sh - 1);
    const int *r0 = hrows.data() + static_cast<size_t>(y0) * dw * cn;
    const int *r1 = hrows.data() + static_cast<size_t>(y1) * dw * cn;
    const int b0 = beta[2 * dy], b1 = beta[2 * dy + 1];
    uint8_t *d = dst.row(dy);
    for (int i = 0; i < dw * cn; ++i) {
      const int v = (((b0 * (r0[i] >> 4)) >> 16) + ((b1 * (r1[i] >> 4)) >> 16) + 2) >> 2;
      d[i] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
  }
  return dst;
}

// cv::resize(INTER_NEAREST): source index floor(d * (src / dst)).
Image resize_nearest(const Image &src, int dw, int dh) {
  const double fx = 1.0 / (static_cast<double>(dw) / src.w);
  const double fy = 1.0 / (static_cast<double>(dh) / src.h);
  Image dst{dh, dw, src.c, std::vector<uint8_t>(static_cast<size_t>(dh) * dw * src.c)};
  for (int dy = 0; dy < dh; ++dy) {
    const int sy = std::min(static_cast<int>(std::floor(dy * fy)), src.h - 1);
    for (int dx = 0; dx < dw; ++dx) {
      const int sx = std::min(static_cast<int>(std::floor(dx * fx)), src.w - 1);
      std::memcpy(dst.row(dy) + dx * src.c, src.row(sy) + sx * src.c, src.c);
    }
  }
  return dst;
}

Image resize(const Image &src, int dw, int dh, const json &step, Geometry &geo) {
  if (dw <= 0 || dh <= 0) throw Error("resize to an empty size");
  if (step.value("backend", "cv2") != "cv2")
    throw Error("resize backend '" + step.at("backend").get<std::string>() +
                "' is not supported by this example (cv2)");
  const std::string interpolation = step.value("interpolation", "bilinear");
  geo.sx *= static_cast<double>(dw) / src.w;
  geo.sy *= static_cast<double>(dh) / src.h;
  geo.ox *= static_cast<double>(dw) / src.w;
  geo.oy *= static_cast<double>(dh) / src.h;
  if (dw == src.w && dh == src.h) return src;  // cv::resize copies
  if (interpolation == "bilinear") return resize_bilinear(src, dw, dh);
  if (interpolation == "nearest") return resize_nearest(src, dw, dh);
  throw Error("interpolation '" + interpolation +
              "' is not supported by this example (bilinear, nearest)");
}

// ---- the preprocessing steps of bundle.json --------------------------------

Image load_image(const std::string &path, const std::string &channel_order) {
  int w = 0, h = 0, n = 0;
  // 3 channels: gray is replicated and alpha dropped, as cv2.IMREAD_COLOR;
  // 16-bit images are reduced to 8 bits by >> 8, as cv2 does.
  uint8_t *pixels = stbi_load(path.c_str(), &w, &h, &n, 3);
  if (!pixels) throw Error("cannot read image " + path + ": " + stbi_failure_reason());
  Image img{h, w, 3, std::vector<uint8_t>(pixels, pixels + static_cast<size_t>(w) * h * 3)};
  stbi_image_free(pixels);
  if (channel_order == "bgr") {  // stb gives RGB
    for (size_t i = 0; i < img.data.size(); i += 3) std::swap(img.data[i], img.data[i + 2]);
  } else if (channel_order != "rgb") {
    throw Error("unknown channel_order '" + channel_order + "'");
  }
  return img;
}

// mmpretrain ResizeEdge.
Image resize_edge(const Image &img, const json &step, Geometry &geo) {
  const std::string edge = step.value("edge", "short");
  const int scale = step.at("scale").get<int>();
  const int h = img.h, w = img.w;
  int width, height;
  if ((edge == "short" && w < h) || (edge == "long" && w > h) || edge == "width") {
    width = scale;
    height = static_cast<int>(static_cast<double>(scale) * h / w);
  } else {
    height = scale;
    width = static_cast<int>(static_cast<double>(scale) * w / h);
  }
  return resize(img, width, height, step, geo);
}

// mmcv Resize: "size" is [h, w]; keep_ratio scales as mmcv.imrescale.
Image resize_step(const Image &img, const json &step, Geometry &geo) {
  const int th = step.at("size").at(0).get<int>(), tw = step.at("size").at(1).get<int>();
  int width = tw, height = th;
  if (step.value("keep_ratio", false)) {
    const double factor = std::min(static_cast<double>(std::max(th, tw)) / std::max(img.h, img.w),
                                   static_cast<double>(std::min(th, tw)) / std::min(img.h, img.w));
    width = static_cast<int>(img.w * factor + 0.5);
    height = static_cast<int>(img.h * factor + 0.5);
  }
  return resize(img, width, height, step, geo);
}

// mmcv CenterCrop: "size" is [h, w]; offsets rounded half to even as
// Python's round().
Image center_crop(const Image &img, const json &step, Geometry &geo) {
  const int ch = std::min(step.at("size").at(0).get<int>(), img.h);
  const int cw = std::min(step.at("size").at(1).get<int>(), img.w);
  const int y1 = std::max(0, static_cast<int>(std::nearbyint((img.h - ch) / 2.0)));
  const int x1 = std::max(0, static_cast<int>(std::nearbyint((img.w - cw) / 2.0)));
  Image out{ch, cw, img.c, std::vector<uint8_t>(static_cast<size_t>(ch) * cw * img.c)};
  for (int y = 0; y < ch; ++y)
    std::memcpy(out.row(y), img.row(y1 + y) + x1 * img.c, static_cast<size_t>(cw) * img.c);
  geo.ox += x1;
  geo.oy += y1;
  return out;
}

// (x - mean) / std per channel in float32, after an optional BGR -> RGB swap.
Tensor normalize(const Image &img, const json &step) {
  const auto mean = step.at("mean").get<std::vector<float>>();
  const auto stdev = step.at("std").get<std::vector<float>>();
  const bool to_rgb = step.value("to_rgb", false);
  if (static_cast<int>(mean.size()) != img.c || static_cast<int>(stdev.size()) != img.c)
    throw Error("normalize: mean/std do not match the image channels");
  Tensor t{img.c, img.h, img.w, std::vector<float>(static_cast<size_t>(img.c) * img.h * img.w)};
  for (int k = 0; k < img.c; ++k) {
    const int from = to_rgb ? img.c - 1 - k : k;
    float *p = t.plane(k);
    for (int y = 0; y < img.h; ++y) {
      const uint8_t *r = img.row(y);
      for (int x = 0; x < img.w; ++x)
        p[y * img.w + x] = (static_cast<float>(r[x * img.c + from]) - mean[k]) / stdev[k];
    }
  }
  return t;
}

Tensor to_tensor(const Image &img) {  // no normalize step: plain float values
  json identity = {{"mean", std::vector<float>(img.c, 0.f)},
                   {"std", std::vector<float>(img.c, 1.f)}};
  return normalize(img, identity);
}

// Bottom/right padding to "size" [h, w], or to multiples of "size_divisor"
// (the image stays at the top left).
Tensor pad(const Tensor &t, const json &step) {
  int ph, pw;
  if (step.contains("size") && !step.at("size").is_null()) {
    ph = step.at("size").at(0).get<int>(), pw = step.at("size").at(1).get<int>();
  } else {
    const int d = step.at("size_divisor").get<int>();
    ph = (t.h + d - 1) / d * d, pw = (t.w + d - 1) / d * d;
  }
  if (ph < t.h || pw < t.w) throw Error("pad: the image is larger than the pad size");
  const float value = step.value("value", 0.f);
  Tensor out{t.c, ph, pw, std::vector<float>(static_cast<size_t>(t.c) * ph * pw, value)};
  for (int k = 0; k < t.c; ++k)
    for (int y = 0; y < t.h; ++y)
      std::memcpy(out.plane(k) + static_cast<size_t>(y) * pw, t.plane(k) + static_cast<size_t>(y) * t.w,
                  sizeof(float) * t.w);
  return out;
}

Tensor preprocess(const std::string &image_path, const json &steps, int &orig_h, int &orig_w,
                  Geometry &geo) {
  Image img;
  Tensor t;
  bool is_tensor = false, loaded = false;
  for (const json &step : steps) {
    const std::string type = step.at("type").get<std::string>();
    if (type == "load") {
      img = load_image(image_path, step.value("channel_order", "bgr"));
      orig_h = img.h, orig_w = img.w;
      geo.valid_h = img.h, geo.valid_w = img.w;
      loaded = true;
      continue;
    }
    if (!loaded) throw Error("preprocess: the first step must be 'load'");
    if (type == "normalize" || type == "pad") {
      if (type == "normalize") {
        if (is_tensor) throw Error("preprocess: normalize twice");
        t = normalize(img, step);
      } else {
        if (!is_tensor) t = to_tensor(img);
        geo.valid_h = t.h, geo.valid_w = t.w;
        t = pad(t, step);
      }
      is_tensor = true;
      continue;
    }
    if (is_tensor) throw Error("preprocess: '" + type + "' after normalize/pad is not supported");
    if (type == "resize_edge") img = resize_edge(img, step, geo);
    else if (type == "resize") img = resize_step(img, step, geo);
    else if (type == "center_crop") img = center_crop(img, step, geo);
    else throw Error("preprocess: unknown step '" + type + "'");
    geo.valid_h = img.h, geo.valid_w = img.w;
  }
  if (!loaded) throw Error("preprocess: no 'load' step");
  return is_tensor ? t : to_tensor(img);
}

// ---- ncnn -------------------------------------------------------------------

// An ncnn output as a plain float vector (c, h, w order), and its shape.
// An empty Mat (DetectionOutput when nothing passes) gives no values.
std::vector<float> flatten(const ncnn::Mat &m, int &c, int &h, int &w) {
  if (m.empty()) {
    c = h = w = 0;
    return {};
  }
  if (m.elempack != 1 || m.elemsize != 4) throw Error("unexpected ncnn output layout");
  c = m.dims == 3 ? m.c : 1;
  h = m.dims >= 2 ? m.h : 1;
  w = m.dims >= 1 ? m.w : 0;
  std::vector<float> out(static_cast<size_t>(c) * h * w);
  for (int k = 0; k < c; ++k) {
    const float *p = m.dims == 3 ? static_cast<const float *>(m.channel(k).data)
                                 : static_cast<const float *>(m.data);
    std::copy(p, p + static_cast<size_t>(h) * w, out.begin() + static_cast<size_t>(k) * h * w);
  }
  return out;
}

// ---- postprocessing ---------------------------------------------------------

const json *class_names(const json &post) {
  const auto it = post.find("class_names");
  return it != post.end() && it->is_array() && !it->empty() ? &*it : nullptr;
}

json classification(const std::vector<float> &probs, const json &post) {
  if (probs.empty()) throw Error("empty classification output");
  std::vector<int> order(probs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return probs[a] > probs[b]; });
  const size_t k = std::min<size_t>(post.value("topk", 5), probs.size());
  json labels = json::array(), scores = json::array();
  for (size_t i = 0; i < k; ++i) {
    labels.push_back(order[i]);
    scores.push_back(probs[order[i]]);
  }
  json result = {{"task", "classification"},
                 {"pred_label", order[0]},
                 {"pred_score", probs[order[0]]},
                 {"top5", {{"labels", labels}, {"scores", scores}}}};
  if (const json *names = class_names(post)) result["pred_class"] = names->at(order[0]);
  return result;
}

// Rows [label (1-based), score, x1, y1, x2, y2] in network-input pixels,
// mapped back to the image in float32 (as mmdet: divided by the resize's
// scale factor), by decreasing score, without the boxes whose width or
// height is min_bbox_size or less (if it is >= 0; mmdet drops those before
// its NMS). No rows (an empty output): no detections.
json detection(const std::vector<float> &rows, int cols, const Geometry &geo, const json &post) {
  if (!rows.empty() && cols != 6) throw Error("detection output rows must have 6 values");
  const size_t n = rows.size() / 6;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return rows[6 * a + 1] > rows[6 * b + 1]; });
  const float sx = static_cast<float>(geo.sx), sy = static_cast<float>(geo.sy);
  const float ox = static_cast<float>(geo.ox), oy = static_cast<float>(geo.oy);
  const float min_size = post.value("min_bbox_size", -1.f);
  const json *names = class_names(post);
  json dets = json::array();
  for (const size_t i : order) {
    const float *r = &rows[6 * i];
    const int label = static_cast<int>(r[0]) - 1;  // 0 is the background
    const float x1 = (r[2] + ox) / sx, y1 = (r[3] + oy) / sy;
    const float x2 = (r[4] + ox) / sx, y2 = (r[5] + oy) / sy;
    if (min_size >= 0 && !(x2 - x1 > min_size && y2 - y1 > min_size)) continue;
    json det = {{"bbox", {x1, y1, x2, y2}}, {"score", r[1]}, {"label", label}};
    if (names && label >= 0 && label < static_cast<int>(names->size())) det["class"] = names->at(label);
    dets.push_back(det);
  }
  return {{"task", "detection"}, {"detections", dets}};
}

// Source rows (or columns) of a bilinear resize from n_in to n_out, as
// torch.nn.functional.interpolate computes them in float32.
void bilinear_source(int n_in, int n_out, bool align_corners, std::vector<int> &i0,
                     std::vector<int> &i1, std::vector<float> &frac) {
  i0.resize(n_out), i1.resize(n_out), frac.resize(n_out);
  float scale;
  if (align_corners)
    scale = n_out > 1 ? static_cast<float>(static_cast<double>(n_in - 1) / (n_out - 1)) : 0.f;
  else
    scale = static_cast<float>(static_cast<double>(n_in) / n_out);
  for (int d = 0; d < n_out; ++d) {
    const float s = align_corners ? d * scale : std::max((d + 0.5f) * scale - 0.5f, 0.f);
    i0[d] = std::min(static_cast<int>(s), n_in - 1);
    i1[d] = std::min(i0[d] + 1, n_in - 1);
    frac[d] = s - static_cast<float>(i0[d]);
  }
}

// Logits (C, H, W) at the network input: the image part (before padding) is
// resized to the image (bilinear, rows then columns, in float32 as mmseg's
// resize) and the argmax taken per pixel (the first of equal maxima).
json segmentation(const std::vector<float> &logits, int c, int h, int w, int orig_h, int orig_w,
                  const Geometry &geo, const json &post, const std::string &out_path) {
  if (out_path.empty()) throw Error("a segmentation bundle writes a label map: give --out FILE.png");
  const auto ends_with = [&](const std::string &suffix) {
    return out_path.size() >= suffix.size() &&
           out_path.compare(out_path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  const bool png = ends_with(".png");
  if (!png && !ends_with(".pgm")) throw Error("--out must be a .png or .pgm file, not " + out_path);
  if (c <= 0 || h <= 0 || w <= 0) throw Error("empty segmentation output");
  if (c > 256) throw Error("more than 256 classes do not fit an 8-bit label map");
  const int vh = std::min(geo.valid_h, h), vw = std::min(geo.valid_w, w);
  const bool align_corners = post.value("align_corners", false);
  std::vector<int> y0, y1, x0, x1;
  std::vector<float> fy, fx;
  bilinear_source(vh, orig_h, align_corners, y0, y1, fy);
  bilinear_source(vw, orig_w, align_corners, x0, x1, fx);
  std::vector<uint8_t> labels(static_cast<size_t>(orig_h) * orig_w);
  std::vector<float> best(labels.size()), rows(static_cast<size_t>(orig_h) * vw);
  for (int k = 0; k < c; ++k) {
    const float *p = logits.data() + static_cast<size_t>(k) * h * w;
    for (int y = 0; y < orig_h; ++y)  // rows first
      for (int x = 0; x < vw; ++x)
        rows[static_cast<size_t>(y) * vw + x] =
            p[y0[y] * w + x] * (1.f - fy[y]) + p[y1[y] * w + x] * fy[y];
    for (int y = 0; y < orig_h; ++y) {
      const float *r = rows.data() + static_cast<size_t>(y) * vw;
      for (int x = 0; x < orig_w; ++x) {
        const float v = r[x0[x]] * (1.f - fx[x]) + r[x1[x]] * fx[x];
        const size_t i = static_cast<size_t>(y) * orig_w + x;
        if (k == 0 || v > best[i]) best[i] = v, labels[i] = static_cast<uint8_t>(k);
      }
    }
  }
  bool ok;
  if (png) {
    ok = stbi_write_png(out_path.c_str(), orig_w, orig_h, 1, labels.data(), orig_w) != 0;
  } else {
    std::ofstream f(out_path, std::ios::binary);
    f << "P5\n" << orig_w << " " << orig_h << "\n255\n";
    f.write(reinterpret_cast<const char *>(labels.data()), static_cast<std::streamsize>(labels.size()));
    ok = static_cast<bool>(f);
  }
  if (!ok) throw Error("cannot write " + out_path);
  return {{"task", "segmentation"}, {"out", out_path}, {"shape", {orig_h, orig_w}}};
}

struct Options {
  std::string out, dump, fp16 = "bundle";
  int threads = 0;
};

json run(const std::string &bundle_dir, const std::string &image_path, const Options &options) {
  std::ifstream f(bundle_dir + "/bundle.json");
  if (!f) throw Error("cannot read " + bundle_dir + "/bundle.json");
  const json bundle = json::parse(f);
  if (bundle.value("format", "") != "edgeformer_mm.bundle" || bundle.value("format_version", 0) != 1)
    throw Error("not an edgeformer_mm bundle of format 1: " + bundle_dir);
  if (bundle.at("backend") != "ncnn")
    throw Error("this example runs ncnn bundles only, not " + bundle.at("backend").get<std::string>());
  for (const auto &[name, info] : bundle.at("files").items()) {
    std::ifstream file(bundle_dir + "/" + name, std::ios::binary | std::ios::ate);
    if (!file) throw Error("missing bundle file " + name);
    if (info.contains("bytes") && static_cast<long long>(file.tellg()) != info.at("bytes").get<long long>())
      throw Error("bundle file " + name + " does not have the size recorded in bundle.json");
  }
  const std::string task = bundle.at("task").get<std::string>();
  const json post = bundle.value("postprocess", json::object());

  int orig_h = 0, orig_w = 0;
  Geometry geo;
  const Tensor input = preprocess(image_path, bundle.at("preprocess"), orig_h, orig_w, geo);
  if (!options.dump.empty()) {
    std::ofstream dump(options.dump, std::ios::binary);
    dump.write(reinterpret_cast<const char *>(input.data.data()),
               static_cast<std::streamsize>(sizeof(float) * input.data.size()));
    if (!dump) throw Error("cannot write " + options.dump);
  }
  const auto &shape = bundle.at("input").at("shape");
  if (shape.size() == 4 && (shape[2] != input.h || shape[3] != input.w))
    std::cerr << "warning: the preprocessed image is " << input.h << "x" << input.w
              << ", the bundle's input " << shape[2] << "x" << shape[3] << "\n";

  ncnn::Net net;
  if (options.threads > 0) net.opt.num_threads = options.threads;  // else ncnn's default
  const bool fp16 = options.fp16 == "bundle" ? bundle.value("precision", "fp32") == "fp16"
                                             : options.fp16 == "on";
  if (!fp16) {  // ncnn stores and computes in fp16 on ARMv8.2 by default
    net.opt.use_fp16_storage = false;
    net.opt.use_fp16_packed = false;
    net.opt.use_fp16_arithmetic = false;
  }
  if (net.load_param((bundle_dir + "/end2end.param").c_str()) != 0 ||
      net.load_model((bundle_dir + "/end2end.bin").c_str()) != 0)
    throw Error("ncnn cannot load " + bundle_dir + "/end2end.param/.bin");

  ncnn::Mat in(input.w, input.h, input.c);
  for (int k = 0; k < input.c; ++k)
    std::memcpy(in.channel(k).data, input.plane(k), sizeof(float) * input.h * input.w);
  ncnn::Extractor ex = net.create_extractor();
  const std::string input_name = bundle.at("input").value("name", "input");
  const std::string output_name = bundle.at("outputs").at(0).get<std::string>();
  if (ex.input(input_name.c_str(), in) != 0) throw Error("no input blob " + input_name);
  ncnn::Mat out;
  if (ex.extract(output_name.c_str(), out) != 0) throw Error("no output blob " + output_name);
  int c = 0, h = 0, w = 0;
  const std::vector<float> values = flatten(out, c, h, w);

  if (task == "classification") return classification(values, post);
  if (task == "detection") return detection(values, w, geo, post);
  if (task == "segmentation")
    return segmentation(values, c, h, w, orig_h, orig_w, geo, post, options.out);
  throw Error("unknown task " + task);
}

}  // namespace

int main(int argc, char **argv) {
  const char *usage =
      "usage: edgeformer_run BUNDLE_DIR IMAGE [--out OUT] [--threads N]\n"
      "                      [--ncnn-fp16 bundle|on|off] [--dump-input FILE]\n";
  std::vector<std::string> positional;
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "-h" || arg == "--help") {
      std::cout << usage;
      return 0;
    } else if (arg == "--out" && has_value) {
      options.out = argv[++i];
    } else if (arg == "--dump-input" && has_value) {
      options.dump = argv[++i];
    } else if (arg == "--threads" && has_value) {
      options.threads = std::atoi(argv[++i]);
    } else if (arg == "--ncnn-fp16" && has_value) {
      options.fp16 = argv[++i];
      if (options.fp16 != "bundle" && options.fp16 != "on" && options.fp16 != "off") {
        std::cerr << usage << "--ncnn-fp16 must be bundle, on or off\n";
        return 2;
      }
    } else if (arg.rfind("--", 0) == 0) {
      std::cerr << usage << "unknown option (or missing value): " << arg << "\n";
      return 2;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    std::cerr << usage;
    return 2;
  }
  try {
    std::cout << run(positional[0], positional[1], options).dump() << std::endl;
  } catch (const std::exception &e) {  // Error, json parse/type errors
    std::cerr << "edgeformer_run: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
