// Pixels and the on-disk cache of dubbed frames.
//
// A cache entry is keyed by (parameter hash, frame, source fingerprint). The fingerprint hashes
// the source identity (Resolve's kOfxImageEffectPropSrcFilePath when the host gives it) together
// with a sample of the source image's own rows, so an upstream grade or a different clip never
// finds a stale dub: render then passes the source through instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ofx_abi.h"

namespace edidub {

struct ImageView {
    uint8_t *data = nullptr;  // lower-left pixel of `bounds` (OFX: rows go bottom-up)
    OfxRectI bounds{0, 0, 0, 0};
    ptrdiff_t row_bytes = 0;  // may be negative (top-down host buffers)
    int pixel_bytes = 0;
    bool float_rgba = false;
    bool float_alpha = false;  // a one-channel float mask

    int width() const { return bounds.x2 - bounds.x1; }
    int height() const { return bounds.y2 - bounds.y1; }
    uint8_t *pixel(int x, int y) const {
        return data + ptrdiff_t(y - bounds.y1) * row_bytes + ptrdiff_t(x - bounds.x1) * pixel_bytes;
    }
};

// Bytes per pixel from OFX depth and component strings; 0 when unknown.
int pixel_bytes_for(const std::string &depth, const std::string &components);

uint64_t fnv1a(const void *data, size_t size, uint64_t hash = 14695981039346656037ull);
std::string hex64(uint64_t value);

// Identity + size + up to 64 evenly spaced rows of the image, read row by row through
// rowBytes so the same pixels hash the same whatever the host's buffer layout.
uint64_t source_fingerprint(const ImageView &image, const std::string &identity);

// The holdout matte over `bounds` as packed floats, rows bottom-up: the mask image's alpha (its
// one channel for an Alpha image, A for RGBA), zero where the mask has no pixels (an absent
// image is transparent black by the OFX spec). False when the mask is neither float Alpha nor
// float RGBA. `nonfinite` counts NaN and Inf values.
bool matte_plane(const ImageView &mask, const OfxRectI &bounds, std::vector<float> &out,
                 size_t &nonfinite);

// Up to 64 evenly spaced rows of a packed plane, folded into `hash`.
uint64_t plane_fingerprint(const std::vector<float> &plane, int width, int height,
                           uint64_t hash);

// Copy `window` from src to dst one row at a time (memcpy of each row's bytes), honouring both
// images' bounds and rowBytes; pixels of the window outside src's bounds become zero.
void copy_window(const ImageView &dst, const ImageView &src, const OfxRectI &window);

struct CachedFrame {
    OfxRectI bounds{0, 0, 0, 0};
    std::vector<float> rgba;  // width*height*4, rows bottom-up, packed
};

// $EDIDUB_OFX_CACHE, else $XDG_CACHE_HOME/edidub/ofx, else ~/.cache/edidub/ofx.
std::string cache_root();
std::string cache_path(const std::string &root, uint64_t param_hash, int frame,
                       uint64_t fingerprint);
// Atomic (temp file + rename): a reader never sees half an entry.
bool cache_store(const std::string &path, const CachedFrame &frame, std::string &error);
bool cache_load(const std::string &path, CachedFrame &frame);

// Copy a cached frame into dst over `window` (same bounds required; caller checks).
void copy_cached(const ImageView &dst, const CachedFrame &frame, const OfxRectI &window);

// Recently used cache entries kept in memory, shared by every instance of the process, so
// playback and the host's repeated renders of one frame do not re-read the file. Budget:
// $EDIDUB_OFX_MEMORY_MB (default 256; 0 turns it off). Thread-safe; lookups never wait on I/O.
class FrameLru {
public:
    std::shared_ptr<const CachedFrame> get(const std::string &path);
    void put(const std::string &path, std::shared_ptr<const CachedFrame> frame);
    void clear();

private:
    using Entry = std::pair<std::string, std::shared_ptr<const CachedFrame>>;
    std::mutex mu_;
    std::list<Entry> order_;  // most recent first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
    size_t bytes_ = 0;
};

}  // namespace edidub
