#include "dub_cache.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>

namespace edidub {

namespace {

constexpr char kCacheMagic[4] = {'E', 'D', 'C', '1'};

bool make_dirs(const std::string &path) {
    std::string partial;
    size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        partial = path.substr(0, pos);
        if (partial.empty()) continue;
        if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) return false;
    }
    return true;
}

}  // namespace

int pixel_bytes_for(const std::string &depth, const std::string &components) {
    int channel = depth == kOfxBitDepthFloat   ? 4
                  : depth == kOfxBitDepthHalf  ? 2
                  : depth == kOfxBitDepthShort ? 2
                  : depth == kOfxBitDepthByte  ? 1
                                               : 0;
    int count = components == kOfxImageComponentRGBA    ? 4
                : components == kOfxImageComponentRGB   ? 3
                : components == kOfxImageComponentAlpha ? 1
                                                        : 0;
    return channel * count;
}

uint64_t fnv1a(const void *data, size_t size, uint64_t hash) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    for (size_t i = 0; i < size; ++i) {
        hash ^= p[i];
        hash *= 1099511628211ull;
    }
    return hash;
}

std::string hex64(uint64_t value) {
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(value));
    return buf;
}

uint64_t source_fingerprint(const ImageView &image, const std::string &identity) {
    uint64_t hash = fnv1a(identity.data(), identity.size());
    int dims[5] = {image.bounds.x1, image.bounds.y1, image.width(), image.height(),
                   image.pixel_bytes};
    hash = fnv1a(dims, sizeof(dims), hash);
    const int rows = image.height();
    if (rows <= 0 || !image.data) return hash;
    const int samples = std::min(rows, 64);
    const size_t row_size = size_t(image.width()) * size_t(image.pixel_bytes);
    for (int i = 0; i < samples; ++i) {
        int y = image.bounds.y1 + (samples == 1 ? 0 : int((int64_t(i) * (rows - 1)) / (samples - 1)));
        hash = fnv1a(image.pixel(image.bounds.x1, y), row_size, hash);
    }
    return hash;
}

bool matte_plane(const ImageView &mask, const OfxRectI &bounds, std::vector<float> &out,
                 size_t &nonfinite) {
    const int width = bounds.x2 - bounds.x1, height = bounds.y2 - bounds.y1;
    out.assign(size_t(std::max(width, 0)) * size_t(std::max(height, 0)), 0.0f);
    nonfinite = 0;
    if (!mask.data) return true;
    if (!mask.float_alpha && !mask.float_rgba) return false;
    const int offset = mask.float_rgba ? 12 : 0;  // bytes to A within the pixel
    const int x1 = std::max(bounds.x1, mask.bounds.x1), x2 = std::min(bounds.x2, mask.bounds.x2);
    const int y1 = std::max(bounds.y1, mask.bounds.y1), y2 = std::min(bounds.y2, mask.bounds.y2);
    for (int y = y1; y < y2; ++y) {
        float *row = out.data() + size_t(y - bounds.y1) * size_t(width);
        for (int x = x1; x < x2; ++x) {
            float value;
            std::memcpy(&value, mask.pixel(x, y) + offset, 4);
            if (!std::isfinite(value)) ++nonfinite;
            row[x - bounds.x1] = value;
        }
    }
    return true;
}

uint64_t plane_fingerprint(const std::vector<float> &plane, int width, int height,
                           uint64_t hash) {
    int dims[2] = {width, height};
    hash = fnv1a(dims, sizeof(dims), hash);
    if (width <= 0 || height <= 0 || plane.size() != size_t(width) * size_t(height)) return hash;
    const int samples = std::min(height, 64);
    for (int i = 0; i < samples; ++i) {
        int y = samples == 1 ? 0 : int((int64_t(i) * (height - 1)) / (samples - 1));
        hash = fnv1a(plane.data() + size_t(y) * size_t(width), size_t(width) * 4, hash);
    }
    return hash;
}

void copy_window(const ImageView &dst, const ImageView &src, const OfxRectI &window) {
    const int bpp = dst.pixel_bytes;
    for (int y = window.y1; y < window.y2; ++y) {
        if (y < dst.bounds.y1 || y >= dst.bounds.y2) continue;
        int x1 = std::max(window.x1, dst.bounds.x1), x2 = std::min(window.x2, dst.bounds.x2);
        if (x1 >= x2) return;
        uint8_t *out = dst.pixel(x1, y);
        std::memset(out, 0, size_t(x2 - x1) * size_t(bpp));
        if (!src.data || y < src.bounds.y1 || y >= src.bounds.y2 || src.pixel_bytes != bpp)
            continue;
        int sx1 = std::max(x1, src.bounds.x1), sx2 = std::min(x2, src.bounds.x2);
        if (sx1 >= sx2) continue;
        std::memcpy(dst.pixel(sx1, y), src.pixel(sx1, y), size_t(sx2 - sx1) * size_t(bpp));
    }
}

void copy_cached(const ImageView &dst, const CachedFrame &frame, const OfxRectI &window) {
    ImageView src;
    src.data = reinterpret_cast<uint8_t *>(const_cast<float *>(frame.rgba.data()));
    src.bounds = frame.bounds;
    src.pixel_bytes = 16;
    src.row_bytes = ptrdiff_t(frame.bounds.x2 - frame.bounds.x1) * 16;
    copy_window(dst, src, window);
}

std::string cache_root() {
    if (const char *env = std::getenv("EDIDUB_OFX_CACHE"); env && *env) return env;
    if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
        return std::string(xdg) + "/edidub/ofx";
    if (const char *home = std::getenv("HOME"); home && *home)
        return std::string(home) + "/.cache/edidub/ofx";
    return "/tmp/edidub-ofx-cache-" + std::to_string(::getuid());
}

std::string cache_path(const std::string &root, uint64_t param_hash, int frame,
                       uint64_t fingerprint) {
    return root + "/" + hex64(param_hash) + "/" + std::to_string(frame) + "_" +
           hex64(fingerprint) + ".edc";
}

bool cache_store(const std::string &path, const CachedFrame &frame, std::string &error) {
    std::string dir = path.substr(0, path.rfind('/'));
    if (!make_dirs(dir)) {
        error = "cannot create the cache folder " + dir + ": " + std::strerror(errno);
        return false;
    }
    std::string tmp = path + ".part" + std::to_string(::getpid());
    FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) {
        error = "cannot write " + tmp + ": " + std::strerror(errno);
        return false;
    }
    int32_t head[4] = {frame.bounds.x1, frame.bounds.y1, frame.bounds.x2, frame.bounds.y2};
    bool ok = std::fwrite(kCacheMagic, 1, 4, f) == 4 && std::fwrite(head, 4, 4, f) == 4 &&
              std::fwrite(frame.rgba.data(), sizeof(float), frame.rgba.size(), f) ==
                  frame.rgba.size();
    ok = (std::fclose(f) == 0) && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        error = "cannot write the cache entry " + path + ": " + std::strerror(errno);
        std::remove(tmp.c_str());
        return false;
    }
    return true;
}

bool cache_load(const std::string &path, CachedFrame &frame) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    char magic[4];
    int32_t head[4];
    bool ok = std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, kCacheMagic, 4) == 0 &&
              std::fread(head, 4, 4, f) == 4 && head[2] > head[0] && head[3] > head[1];
    if (ok) {
        frame.bounds = {head[0], head[1], head[2], head[3]};
        size_t count = size_t(head[2] - head[0]) * size_t(head[3] - head[1]) * 4;
        frame.rgba.resize(count);
        ok = std::fread(frame.rgba.data(), sizeof(float), count, f) == count;
    }
    std::fclose(f);
    return ok;
}

namespace {

size_t memory_budget() {
    const char *env = std::getenv("EDIDUB_OFX_MEMORY_MB");
    long mb = (env && *env) ? std::strtol(env, nullptr, 10) : 256;
    return mb > 0 ? size_t(mb) << 20 : 0;
}

size_t entry_bytes(const CachedFrame &frame) { return frame.rgba.size() * sizeof(float); }

}  // namespace

std::shared_ptr<const CachedFrame> FrameLru::get(const std::string &path) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(path);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second;
}

void FrameLru::put(const std::string &path, std::shared_ptr<const CachedFrame> frame) {
    const size_t budget = memory_budget();
    const size_t size = entry_bytes(*frame);
    if (size > budget) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = index_.find(path); it != index_.end()) {
        bytes_ -= entry_bytes(*it->second->second);
        order_.erase(it->second);
        index_.erase(it);
    }
    while (!order_.empty() && bytes_ + size > budget) {
        bytes_ -= entry_bytes(*order_.back().second);
        index_.erase(order_.back().first);
        order_.pop_back();
    }
    order_.emplace_front(path, std::move(frame));
    index_[path] = order_.begin();
    bytes_ += size;
}

void FrameLru::clear() {
    std::lock_guard<std::mutex> lock(mu_);
    order_.clear();
    index_.clear();
    bytes_ = 0;
}

}  // namespace edidub
