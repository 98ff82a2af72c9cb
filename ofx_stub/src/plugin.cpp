// EdiDub "Dub range": an OFX image effect that is a thin client of the EdiDub bridge (DESIGN §5).
//
// Render never waits on a job: it copies a cached dubbed frame when one matches (parameters,
// frame, source fingerprint) and otherwise passes the source through, row by row. The work
// happens when the user presses "Dub range" (kOfxActionInstanceChanged, kOfxChangeUserEdited):
// the source frames of the range are fetched with temporal clip access, streamed to the local
// relay (`edidub ofx relay`, which talks gRPC to the bridge) under the host's progress monitor,
// and the results are written to the on-disk cache. A "no" from progressUpdate cancels the job.
// The model never runs in the host process.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dub_cache.h"
#include "ofx_abi.h"
#include "relay_link.h"

#define EDIDUB_EXPORT extern "C" __attribute__((visibility("default")))

namespace edidub {
namespace {

constexpr const char *kPluginId = "org.edidub.DubRange";
constexpr const char *kParamAudio = "audioPath";
constexpr const char *kParamBridge = "bridgeAddress";
constexpr const char *kParamRelay = "relaySocket";
constexpr const char *kParamPreset = "preset";
constexpr const char *kParamFace = "faceIndex";
constexpr const char *kParamFirst = "rangeFirst";
constexpr const char *kParamLast = "rangeLast";
constexpr const char *kParamDub = "dubRange";
// General context only: a mask input whose alpha holds the source back from the dub (a roto of
// a hand or microphone over the mouth). Resolve reports every defined clip as connected and
// hands black for unconnected ones, so the input counts only while the toggle is on
// (research/ofx.md §2.3).
constexpr const char *kClipHoldout = "Holdout";
constexpr const char *kParamHoldout = "useHoldout";
// Bumped after a dub so hosts that cache effect output (Resolve's Smart Cache) re-render.
constexpr const char *kParamGeneration = "dubGeneration";

OfxHost *g_host = nullptr;
const OfxPropertySuiteV1 *g_prop = nullptr;
const OfxImageEffectSuiteV1 *g_effect = nullptr;
const OfxParameterSuiteV1 *g_param = nullptr;
const OfxMemorySuiteV1 *g_memory = nullptr;
const OfxMessageSuiteV1 *g_message = nullptr;
const OfxProgressSuiteV1 *g_progress1 = nullptr;
const OfxProgressSuiteV2 *g_progress2 = nullptr;

// Process-global: Resolve keeps several instances per clip and recreates them on edits
// (research/ofx.md §2.3), so the relay connection is shared and refcounted by instances.
struct Shared {
    // Lock order: refs_mu before dub_mu. A dub holds dub_mu throughout and never takes refs_mu,
    // so instances come and go (on any thread) while a dub runs; render takes neither.
    std::mutex refs_mu;   // guards refs
    std::mutex dub_mu;    // guards link and socket
    int refs = 0;
    RelayLink link;
    std::string socket;   // the path `link` is connected to
    FrameLru frames;      // in-memory copies of cache entries (own lock; render uses it)
};

Shared &shared() {
    static Shared *instance = new Shared();  // never destroyed: hosts unload in any order
    return *instance;
}

struct Instance {
    OfxImageClipHandle source = nullptr;
    OfxImageClipHandle output = nullptr;
    OfxImageClipHandle holdout = nullptr;  // general context only
    std::map<std::string, OfxParamHandle> params;
    std::string identity;  // Resolve's source media path when the host gives it
};

struct Params {
    std::string audio, bridge, relay, preset;
    int face = 0, first = 0, last = 0;
    bool holdout = false;
};

// ---- small property/param helpers ----------------------------------------------------------

std::string get_string(OfxPropertySetHandle props, const char *name, int index = 0) {
    char *value = nullptr;
    if (props && g_prop->propGetString(props, name, index, &value) == kOfxStatOK && value)
        return value;
    return {};
}

int get_int(OfxPropertySetHandle props, const char *name, int index = 0, int fallback = 0) {
    int value = fallback;
    if (props && g_prop->propGetInt(props, name, index, &value) != kOfxStatOK) return fallback;
    return value;
}

double get_double(OfxPropertySetHandle props, const char *name, int index = 0,
                  double fallback = 0.0) {
    double value = fallback;
    if (props && g_prop->propGetDouble(props, name, index, &value) != kOfxStatOK)
        return fallback;
    return value;
}

Instance *instance_of(OfxImageEffectHandle effect) {
    OfxPropertySetHandle props = nullptr;
    g_effect->getPropertySet(effect, &props);
    void *data = nullptr;
    g_prop->propGetPointer(props, kOfxPropInstanceData, 0, &data);
    return static_cast<Instance *>(data);
}

std::string param_string(const Instance &inst, const char *name, OfxTime time) {
    char *value = nullptr;
    auto it = inst.params.find(name);
    if (it == inst.params.end()) return {};
    g_param->paramGetValueAtTime(it->second, time, &value);
    return value ? std::string(value) : std::string();
}

int param_int(const Instance &inst, const char *name, OfxTime time) {
    int value = 0;
    auto it = inst.params.find(name);
    if (it != inst.params.end()) g_param->paramGetValueAtTime(it->second, time, &value);
    return value;
}

Params read_params(const Instance &inst, OfxTime time) {
    Params p;
    p.audio = param_string(inst, kParamAudio, time);
    p.bridge = param_string(inst, kParamBridge, time);
    p.relay = param_string(inst, kParamRelay, time);
    p.preset = param_string(inst, kParamPreset, time);
    p.face = param_int(inst, kParamFace, time);
    p.first = param_int(inst, kParamFirst, time);
    p.last = param_int(inst, kParamLast, time);
    p.holdout = inst.holdout && param_int(inst, kParamHoldout, time) != 0;
    return p;
}

// The result of a dub depends on the audio (path and content version), preset, face and the
// range itself (the audio offset is counted from the first frame, and the engine's temporal
// windows span the range), and on whether a holdout matte applies (its pixels go into the
// frame fingerprint); the bridge address and relay socket do not change pixels.
uint64_t param_hash(const Params &p) {
    struct stat st{};
    long long size = -1, mtime = -1;
    if (::stat(p.audio.c_str(), &st) == 0) {
        size = st.st_size;
        mtime = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    }
    std::string key = p.audio + '\n' + std::to_string(size) + '\n' + std::to_string(mtime) +
                      '\n' + p.preset + '\n' + std::to_string(p.face) + '\n' +
                      std::to_string(p.first) + '\n' + std::to_string(p.last);
    if (p.holdout) key += "\nholdout";
    return fnv1a(key.data(), key.size());
}

std::string default_socket() {
    if (const char *env = std::getenv("EDIDUB_OFX_SOCKET"); env && *env) return env;
    return "/tmp/edidub-ofx-" + std::to_string(::getuid()) + ".sock";
}

void post(OfxImageEffectHandle effect, const char *type, const std::string &text) {
    if (g_message) g_message->message(effect, type, "org.edidub.DubRange", "%s", text.c_str());
    else std::fprintf(stderr, "EdiDub: %s\n", text.c_str());
}

bool image_view(OfxPropertySetHandle img, ImageView &view) {
    void *data = nullptr;
    if (g_prop->propGetPointer(img, kOfxImagePropData, 0, &data) != kOfxStatOK) return false;
    int b[4] = {0, 0, 0, 0};
    if (g_prop->propGetIntN(img, kOfxImagePropBounds, 4, b) != kOfxStatOK) return false;
    std::string depth = get_string(img, kOfxImageEffectPropPixelDepth);
    std::string comps = get_string(img, kOfxImageEffectPropComponents);
    view.data = static_cast<uint8_t *>(data);
    view.bounds = {b[0], b[1], b[2], b[3]};
    view.row_bytes = get_int(img, kOfxImagePropRowBytes);
    view.pixel_bytes = pixel_bytes_for(depth, comps);
    view.float_rgba = depth == kOfxBitDepthFloat && comps == kOfxImageComponentRGBA;
    view.float_alpha = depth == kOfxBitDepthFloat && comps == kOfxImageComponentAlpha;
    return view.data && view.pixel_bytes > 0;
}

// The Holdout input's matte at `time` over `bounds` (packed, rows bottom-up; zero where the
// input has no pixels). False with `error` set for a pixel format other than float Alpha/RGBA
// or NaN/Inf values.
bool fetch_matte(const Instance &inst, OfxTime time, const OfxRectI &bounds,
                 std::vector<float> &plane, std::string &error) {
    OfxPropertySetHandle img = nullptr;
    if (g_effect->clipGetImage(inst.holdout, time, nullptr, &img) != kOfxStatOK) img = nullptr;
    ImageView view;
    const bool readable = !img || image_view(img, view);
    size_t nonfinite = 0;
    const bool ok = readable && matte_plane(view, bounds, plane, nonfinite);
    if (img) g_effect->clipReleaseImage(img);
    const std::string frame = std::to_string(int(std::lround(time)));
    if (!ok) error = "the Holdout input at frame " + frame + " is not 32-bit float Alpha or RGBA";
    else if (nonfinite)
        error = "the Holdout matte at frame " + frame + " holds " + std::to_string(nonfinite) +
                " NaN or Inf values";
    return ok && nonfinite == 0;
}

// Host memory for the frame staging buffer (the memory suite lets the host account for it).
struct HostBuffer {
    explicit HostBuffer(OfxImageEffectHandle effect, size_t size) {
        if (g_memory && g_memory->memoryAlloc(effect, size, &data) == kOfxStatOK && data) {
            host = true;
        } else {
            data = std::malloc(size);
        }
    }
    ~HostBuffer() {
        if (host) g_memory->memoryFree(data);
        else std::free(data);
    }
    HostBuffer(const HostBuffer &) = delete;
    HostBuffer &operator=(const HostBuffer &) = delete;
    void *data = nullptr;
    bool host = false;
};

// The host's progress monitor for one dub; update() is false once the user said "cancel".
struct ProgressMonitor {
    explicit ProgressMonitor(OfxImageEffectHandle effect, const std::string &label)
        : effect(effect) {
        if (g_progress2) g_progress2->progressStart(effect, label.c_str(), "org.edidub.dub");
        else if (g_progress1) g_progress1->progressStart(effect, label.c_str());
    }
    ~ProgressMonitor() { end(); }
    void end() {
        if (ended) return;
        ended = true;
        if (g_progress2) g_progress2->progressEnd(effect);
        else if (g_progress1) g_progress1->progressEnd(effect);
    }
    bool update(double fraction) {
        OfxStatus st = kOfxStatOK;
        if (g_progress2) st = g_progress2->progressUpdate(effect, fraction);
        else if (g_progress1) st = g_progress1->progressUpdate(effect, fraction);
        return st != kOfxStatReplyNo;
    }
    OfxImageEffectHandle effect;
    bool ended = false;
};

// ---- the "Dub range" action --------------------------------------------------------------

void put_i32(uint8_t *p, int32_t v) { std::memcpy(p, &v, 4); }  // x86-64/arm64: little-endian

bool expect_ok(RelayLink &link, uint16_t type, const std::string &text, Message &reply,
               std::string &error) {
    if (!link.request(type, text, reply, error)) return false;
    if (reply.type == kError) {
        error = reply.text();
        return false;
    }
    return true;
}

// Tell the relay to stop the job (it cancels it on the server) and drop the session.
void cancel_job(RelayLink &link) {
    Message reply;
    std::string error;
    if (link.connected()) link.request(kCancel, std::string(), reply, error);
}

OfxStatus dub_range(OfxImageEffectHandle effect, Instance &inst, OfxTime now) {
    Params p = read_params(inst, now);
    if (p.audio.empty()) {
        post(effect, kOfxMessageError, "EdiDub: choose the new line's audio file first.");
        return kOfxStatOK;
    }
    struct stat st{};
    if (::stat(p.audio.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        post(effect, kOfxMessageError, "EdiDub: audio file not found: " + p.audio);
        return kOfxStatOK;
    }
    if (p.last < p.first) {
        post(effect, kOfxMessageError,
             "EdiDub: the range ends (" + std::to_string(p.last) + ") before it starts (" +
                 std::to_string(p.first) + ").");
        return kOfxStatOK;
    }
    for (const std::string *s : {&p.audio, &p.bridge, &p.preset, &inst.identity}) {
        if (s->find('\n') != std::string::npos) {
            post(effect, kOfxMessageError, "EdiDub: a parameter contains a line break: " + *s);
            return kOfxStatOK;
        }
    }
    OfxPropertySetHandle clip_props = nullptr;
    g_effect->clipGetPropertySet(inst.source, &clip_props);
    double range[2] = {0, 0};
    if (g_prop->propGetDoubleN(clip_props, kOfxImageEffectPropFrameRange, 2, range) ==
            kOfxStatOK &&
        range[1] >= range[0] && (p.first < range[0] || p.last > range[1])) {
        post(effect, kOfxMessageError,
             "EdiDub: frames " + std::to_string(p.first) + "-" + std::to_string(p.last) +
                 " lie outside the clip's frames " + std::to_string(int(range[0])) + "-" +
                 std::to_string(int(range[1])) + ".");
        return kOfxStatOK;
    }
    const double fps = get_double(clip_props, kOfxImageEffectPropFrameRate, 0, 24.0);

    Shared &sh = shared();
    std::lock_guard<std::mutex> lock(sh.dub_mu);  // one dub at a time over the one connection
    RelayLink &link = sh.link;
    const std::string socket = p.relay.empty() ? default_socket() : p.relay;
    Message reply;
    std::string error;
    // A kept connection may have died with an earlier relay: one fresh try before giving up.
    bool hello = link.connected() && sh.socket == socket &&
                 link.request(kHello, std::string(), reply, error) && reply.type == kOk;
    if (!hello) {
        hello = link.connect_to(socket, error) &&
                link.request(kHello, std::string(), reply, error) && reply.type == kOk;
    }
    if (!hello) {
        link.close();
        post(effect, kOfxMessageError,
             "EdiDub: the relay is not running (" + error +
                 "). Start it with: edidub ofx relay --socket " + socket +
                 " --server HOST:PORT. Nothing was changed.");
        return kOfxStatOK;
    }
    sh.socket = socket;

    const int count = p.last - p.first + 1;
    ProgressMonitor progress(effect, "EdiDub: dubbing frames " + std::to_string(p.first) + "-" +
                                         std::to_string(p.last));
    // Messages come after the progress monitor is down: a modal error over a modal progress
    // dialog is easy to miss.
    auto finish = [&](const char *type, const std::string &text) {
        progress.end();
        post(effect, type, text);
    };
    char fps_text[32];
    std::snprintf(fps_text, sizeof(fps_text), "%.12g", fps);
    std::map<std::string, std::string> fields = {
        {"audio", p.audio},      {"server", p.bridge}, {"preset", p.preset},
        {"face", std::to_string(p.face)},
        {"first", std::to_string(p.first)},           {"last", std::to_string(p.last)},
        {"fps", fps_text},       {"source", inst.identity},
    };
    if (p.holdout) fields["holdout"] = "1";  // then each FRAME carries the matte plane
    if (!expect_ok(link, kBegin, encode_fields(fields), reply, error)) {
        finish(kOfxMessageError, "EdiDub: the relay refused the job: " + error);
        return kOfxStatOK;
    }
    if (p.holdout && decode_fields(reply.text())["holdout"] != "1") {
        cancel_job(link);
        finish(kOfxMessageError,
               "EdiDub: this relay does not take holdout mattes; update EdiDub Bridge and "
               "restart `edidub ofx relay`. Nothing was changed.");
        return kOfxStatOK;
    }

    // 1. Stream the source frames (temporal clip access; images released before the next).
    std::vector<uint64_t> fingerprints(count);
    std::vector<OfxRectI> bounds(count);
    bool held_any = false;  // did the matte hold back any pixel of the range?
    std::vector<float> matte;
    for (int i = 0; i < count; ++i) {
        const int frame = p.first + i;
        if (!progress.update(0.3 * i / count)) {
            cancel_job(link);
            finish(kOfxMessageMessage, "EdiDub: cancelled; nothing was changed.");
            return kOfxStatOK;
        }
        OfxPropertySetHandle img = nullptr;
        if (g_effect->clipGetImage(inst.source, frame, nullptr, &img) != kOfxStatOK || !img) {
            cancel_job(link);
            finish(kOfxMessageError,
                 "EdiDub: the host gave no source image at frame " + std::to_string(frame) + ".");
            return kOfxStatOK;
        }
        ImageView view;
        if (!image_view(img, view) || !view.float_rgba) {
            g_effect->clipReleaseImage(img);
            cancel_job(link);
            finish(kOfxMessageError,
                 "EdiDub: frame " + std::to_string(frame) + " is not 32-bit float RGBA.");
            return kOfxStatOK;
        }
        fingerprints[i] = source_fingerprint(view, inst.identity);
        bounds[i] = view.bounds;
        const size_t row = size_t(view.width()) * 16;
        const size_t pixels = size_t(view.width()) * size_t(view.height());
        const size_t size = 12 + row * size_t(view.height()) + (p.holdout ? pixels * 4 : 0);
        HostBuffer buffer(effect, size);
        uint8_t *out = static_cast<uint8_t *>(buffer.data);
        put_i32(out, frame);
        put_i32(out + 4, view.width());
        put_i32(out + 8, view.height());
        for (int y = 0; y < view.height(); ++y)
            std::memcpy(out + 12 + row * size_t(y), view.pixel(view.bounds.x1, view.bounds.y1 + y),
                        row);
        g_effect->clipReleaseImage(img);
        if (p.holdout) {  // the matte plane follows the RGBA rows, same bounds, bottom-up
            if (!fetch_matte(inst, frame, bounds[i], matte, error)) {
                cancel_job(link);
                finish(kOfxMessageError, "EdiDub: " + error + "; nothing was changed.");
                return kOfxStatOK;
            }
            held_any = held_any || std::any_of(matte.begin(), matte.end(),
                                               [](float v) { return v > 0.0f; });
            fingerprints[i] = plane_fingerprint(matte, view.width(), view.height(),
                                                fingerprints[i]);
            std::memcpy(out + 12 + row * size_t(view.height()), matte.data(), pixels * 4);
        }
        if (!link.request(kFrame, out, size, reply, error) || reply.type != kOk) {
            if (reply.type == kError) error = reply.text();
            cancel_job(link);
            finish(kOfxMessageError, "EdiDub: sending frame " + std::to_string(frame) +
                                               " failed: " + error);
            return kOfxStatOK;
        }
    }

    // 2. Run the job and follow it; the render action stays free the whole time.
    if (!expect_ok(link, kRun, std::string(), reply, error)) {
        cancel_job(link);
        finish(kOfxMessageError, "EdiDub: the bridge did not start the job: " + error);
        return kOfxStatOK;
    }
    const std::string job = decode_fields(reply.text())["job"];
    std::string warnings;
    for (;;) {
        if (!link.request(kPoll, std::string(), reply, error) || reply.type != kStatus) {
            if (reply.type == kError) error = reply.text();
            finish(kOfxMessageError, "EdiDub: lost track of job " + job + ": " + error);
            return kOfxStatOK;
        }
        auto status = decode_fields(reply.text());
        const std::string state = status["state"];
        if (state == "done") {
            warnings = status["message"];
            break;
        }
        if (state == "failed" || state == "cancelled") {
            finish(kOfxMessageError,
                 "EdiDub: job " + job + " " + state + ": " + status["message"]);
            return kOfxStatOK;
        }
        // The relay's `fraction` spans upload, run and download and never goes back.
        const double fraction = std::atof(status["fraction"].c_str());
        if (!progress.update(0.3 + 0.6 * std::min(std::max(fraction, 0.0), 1.0))) {
            cancel_job(link);
            finish(kOfxMessageMessage,
                 "EdiDub: job " + job + " cancelled; nothing was changed.");
            return kOfxStatOK;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }

    // 3. Fetch every result before writing any: a cancel here leaves the cache untouched.
    std::vector<CachedFrame> results(count);
    for (int i = 0; i < count; ++i) {
        const int frame = p.first + i;
        if (!progress.update(0.9 + 0.1 * i / count)) {
            cancel_job(link);
            finish(kOfxMessageMessage, "EdiDub: cancelled; nothing was changed.");
            return kOfxStatOK;
        }
        uint8_t request[4];
        put_i32(request, frame);
        if (!link.request(kFetch, request, 4, reply, error) || reply.type != kFrame) {
            if (reply.type == kError) error = reply.text();
            finish(kOfxMessageError, "EdiDub: fetching frame " + std::to_string(frame) +
                                               " failed: " + error);
            return kOfxStatOK;
        }
        int32_t head[3];
        const OfxRectI &b = bounds[i];
        const size_t expected = 12 + size_t(b.x2 - b.x1) * size_t(b.y2 - b.y1) * 16;
        if (reply.payload.size() == expected) std::memcpy(head, reply.payload.data(), 12);
        if (reply.payload.size() != expected || head[0] != frame || head[1] != b.x2 - b.x1 ||
            head[2] != b.y2 - b.y1) {
            finish(kOfxMessageError,
                 "EdiDub: the result for frame " + std::to_string(frame) +
                     " does not match the source size; nothing was changed.");
            return kOfxStatOK;
        }
        results[i].bounds = b;
        results[i].rgba.resize((expected - 12) / 4);
        std::memcpy(results[i].rgba.data(), reply.payload.data() + 12, expected - 12);
    }
    link.request(kEnd, std::string(), reply, error);

    const std::string root = cache_root();
    const uint64_t hash = param_hash(p);
    for (int i = 0; i < count; ++i) {
        const std::string path = cache_path(root, hash, p.first + i, fingerprints[i]);
        if (!cache_store(path, results[i], error)) {
            finish(kOfxMessageError, "EdiDub: " + error);
            return kOfxStatOK;
        }
        sh.frames.put(path, std::make_shared<const CachedFrame>(std::move(results[i])));
    }
    auto gen = inst.params.find(kParamGeneration);
    if (gen != inst.params.end()) {
        int value = 0;
        g_param->paramGetValue(gen->second, &value);
        g_param->paramSetValue(gen->second, value + 1);
    }
    progress.update(1.0);
    if (p.holdout && !held_any) {
        if (!warnings.empty()) warnings += "; ";
        warnings += "the Holdout input was empty on every frame of the range, so nothing was "
                    "held out (connect the matte to the effect's Holdout input)";
    }
    if (!warnings.empty())  // e.g. frames with no face, passed through by the engine
        finish(kOfxMessageWarning, "EdiDub: job " + job + " done with warnings: " + warnings);
    return kOfxStatOK;
}

// ---- actions -------------------------------------------------------------------------------

OfxStatus on_load() {
    if (!g_host) return kOfxStatErrFatal;
    g_prop = static_cast<const OfxPropertySuiteV1 *>(g_host->fetchSuite(g_host->host, kOfxPropertySuite, 1));
    g_effect = static_cast<const OfxImageEffectSuiteV1 *>(
        g_host->fetchSuite(g_host->host, kOfxImageEffectSuite, 1));
    g_param = static_cast<const OfxParameterSuiteV1 *>(
        g_host->fetchSuite(g_host->host, kOfxParameterSuite, 1));
    g_memory = static_cast<const OfxMemorySuiteV1 *>(
        g_host->fetchSuite(g_host->host, kOfxMemorySuite, 1));
    g_message = static_cast<const OfxMessageSuiteV1 *>(
        g_host->fetchSuite(g_host->host, kOfxMessageSuite, 1));
    // ofxProgress.h: try version 2, fall back to 1; the suite is optional.
    g_progress2 = static_cast<const OfxProgressSuiteV2 *>(
        g_host->fetchSuite(g_host->host, kOfxProgressSuite, 2));
    if (!g_progress2)
        g_progress1 = static_cast<const OfxProgressSuiteV1 *>(
            g_host->fetchSuite(g_host->host, kOfxProgressSuite, 1));
    return (g_prop && g_effect && g_param) ? kOfxStatOK : kOfxStatErrMissingHostFeature;
}

OfxStatus on_describe(OfxImageEffectHandle effect) {
    OfxPropertySetHandle props = nullptr;
    g_effect->getPropertySet(effect, &props);
    g_prop->propSetString(props, kOfxPropLabel, 0, "EdiDub Dub Range");
    g_prop->propSetString(props, kOfxImageEffectPluginPropGrouping, 0, "EdiDub");
    g_prop->propSetString(props, kOfxImageEffectPropSupportedContexts, 0,
                          kOfxImageEffectContextFilter);
    g_prop->propSetString(props, kOfxImageEffectPropSupportedContexts, 1,
                          kOfxImageEffectContextGeneral);
    g_prop->propSetString(props, kOfxImageEffectPropSupportedPixelDepths, 0, kOfxBitDepthFloat);
    g_prop->propSetInt(props, kOfxImageEffectPropSupportsTiles, 0, 0);
    g_prop->propSetInt(props, kOfxImageEffectPropSupportsMultiResolution, 0, 0);
    g_prop->propSetInt(props, kOfxImageEffectPropTemporalClipAccess, 0, 1);
    g_prop->propSetString(props, kOfxImageEffectPluginRenderThreadSafety, 0,
                          kOfxImageEffectRenderFullySafe);
    g_prop->propSetInt(props, kOfxImageEffectPluginPropHostFrameThreading, 0, 0);
    return kOfxStatOK;
}

OfxPropertySetHandle define_param(OfxParamSetHandle set, const char *type, const char *name,
                                  const char *label, const char *hint) {
    OfxPropertySetHandle props = nullptr;
    g_param->paramDefine(set, type, name, &props);
    g_prop->propSetString(props, kOfxPropLabel, 0, label);
    g_prop->propSetString(props, kOfxParamPropHint, 0, hint);
    return props;
}

void define_int(OfxParamSetHandle set, const char *name, const char *label, const char *hint,
                int value, int lo, int hi, int display_hi) {
    OfxPropertySetHandle props = define_param(set, kOfxParamTypeInteger, name, label, hint);
    // Resolve clamps Int params unless both range and display range are set (research §2.3).
    g_prop->propSetInt(props, kOfxParamPropDefault, 0, value);
    g_prop->propSetInt(props, kOfxParamPropMin, 0, lo);
    g_prop->propSetInt(props, kOfxParamPropMax, 0, hi);
    g_prop->propSetInt(props, kOfxParamPropDisplayMin, 0, lo < 0 ? 0 : lo);
    g_prop->propSetInt(props, kOfxParamPropDisplayMax, 0, display_hi);
    g_prop->propSetInt(props, kOfxParamPropAnimates, 0, 0);
}

void define_string(OfxParamSetHandle set, const char *name, const char *label, const char *hint,
                   const char *value, bool file) {
    OfxPropertySetHandle props = define_param(set, kOfxParamTypeString, name, label, hint);
    g_prop->propSetString(props, kOfxParamPropDefault, 0, value);
    g_prop->propSetString(props, kOfxParamPropStringMode, 0,
                          file ? kOfxParamStringIsFilePath : kOfxParamStringIsSingleLine);
    if (file) g_prop->propSetInt(props, kOfxParamPropStringFilePathExists, 0, 1);
    g_prop->propSetInt(props, kOfxParamPropAnimates, 0, 0);
}

OfxStatus on_describe_in_context(OfxImageEffectHandle effect, OfxPropertySetHandle in_args) {
    const bool general = get_string(in_args, kOfxImageEffectPropContext) ==
                         kOfxImageEffectContextGeneral;
    OfxPropertySetHandle clip = nullptr;
    g_effect->clipDefine(effect, kOfxImageEffectSimpleSourceClipName, &clip);
    g_prop->propSetString(clip, kOfxImageEffectPropSupportedComponents, 0, kOfxImageComponentRGBA);
    g_prop->propSetInt(clip, kOfxImageEffectPropTemporalClipAccess, 0, 1);
    g_prop->propSetInt(clip, kOfxImageEffectPropSupportsTiles, 0, 0);
    g_effect->clipDefine(effect, kOfxImageEffectOutputClipName, &clip);
    g_prop->propSetString(clip, kOfxImageEffectPropSupportedComponents, 0, kOfxImageComponentRGBA);
    g_prop->propSetInt(clip, kOfxImageEffectPropSupportsTiles, 0, 0);
    if (general) {
        g_effect->clipDefine(effect, kClipHoldout, &clip);
        g_prop->propSetString(clip, kOfxImageEffectPropSupportedComponents, 0,
                              kOfxImageComponentAlpha);
        g_prop->propSetString(clip, kOfxImageEffectPropSupportedComponents, 1,
                              kOfxImageComponentRGBA);
        g_prop->propSetInt(clip, kOfxImageClipPropOptional, 0, 1);
        g_prop->propSetInt(clip, kOfxImageClipPropIsMask, 0, 1);
        g_prop->propSetInt(clip, kOfxImageEffectPropTemporalClipAccess, 0, 1);
        g_prop->propSetInt(clip, kOfxImageEffectPropSupportsTiles, 0, 0);
    }

    OfxParamSetHandle set = nullptr;
    g_effect->getParamSet(effect, &set);
    define_string(set, kParamAudio, "New line (audio)", "WAV file with the new line of dialogue",
                  "", true);
    define_string(set, kParamBridge, "Bridge server",
                  "HOST:PORT of the EdiDub bridge (empty: the relay's --server)", "", false);
    define_string(set, kParamRelay, "Relay socket",
                  "Unix socket of `edidub ofx relay` (empty: $EDIDUB_OFX_SOCKET or "
                  "/tmp/edidub-ofx-UID.sock)",
                  "", false);
    define_string(set, kParamPreset, "Preset", "Inference preset of the bridge's model", "final",
                  false);
    define_int(set, kParamFace, "Face index", "Face to dub, counted left to right from 0", 0, 0,
               64, 8);
    define_int(set, kParamFirst, "Range first", "First frame to dub (source frames)", 0, -1000000,
               10000000, 10000);
    define_int(set, kParamLast, "Range last", "Last frame to dub (inclusive)", 0, -1000000,
               10000000, 10000);
    if (general) {
        OfxPropertySetHandle holdout = define_param(
            set, kOfxParamTypeBoolean, kParamHoldout, "Use holdout matte",
            "Keep the source wherever the Holdout input's alpha is 1 (a roto of a hand or "
            "microphone over the mouth): the dub goes behind it");
        g_prop->propSetInt(holdout, kOfxParamPropDefault, 0, 0);
        g_prop->propSetInt(holdout, kOfxParamPropAnimates, 0, 0);
    }
    define_param(set, kOfxParamTypePushButton, kParamDub, "Dub range",
                 "Send the range to the bridge and cache the dubbed frames");
    OfxPropertySetHandle gen = define_param(set, kOfxParamTypeInteger, kParamGeneration,
                                            "Dub generation", "Bumped after each dub");
    g_prop->propSetInt(gen, kOfxParamPropSecret, 0, 1);
    g_prop->propSetInt(gen, kOfxParamPropAnimates, 0, 0);
    return kOfxStatOK;
}

OfxStatus on_create_instance(OfxImageEffectHandle effect) {
    auto *inst = new Instance();
    OfxPropertySetHandle props = nullptr;
    g_effect->getPropertySet(effect, &props);
    g_effect->clipGetHandle(effect, kOfxImageEffectSimpleSourceClipName, &inst->source, nullptr);
    g_effect->clipGetHandle(effect, kOfxImageEffectOutputClipName, &inst->output, nullptr);
    if (g_effect->clipGetHandle(effect, kClipHoldout, &inst->holdout, nullptr) != kOfxStatOK)
        inst->holdout = nullptr;  // the filter context has no Holdout input
    OfxParamSetHandle set = nullptr;
    g_effect->getParamSet(effect, &set);
    for (const char *name : {kParamAudio, kParamBridge, kParamRelay, kParamPreset, kParamFace,
                             kParamFirst, kParamLast, kParamDub, kParamGeneration, kParamHoldout}) {
        OfxParamHandle handle = nullptr;
        if (g_param->paramGetHandle(set, name, &handle, nullptr) == kOfxStatOK)
            inst->params[name] = handle;
    }
    inst->identity = get_string(props, kOfxImageEffectPropSrcFilePath);
    g_prop->propSetPointer(props, kOfxPropInstanceData, 0, inst);
    std::lock_guard<std::mutex> lock(shared().refs_mu);
    ++shared().refs;
    return kOfxStatOK;
}

OfxStatus on_destroy_instance(OfxImageEffectHandle effect) {
    delete instance_of(effect);
    Shared &sh = shared();
    std::lock_guard<std::mutex> lock(sh.refs_mu);
    if (--sh.refs <= 0) {  // the last instance: nobody can be dubbing
        sh.refs = 0;
        std::lock_guard<std::mutex> dub_lock(sh.dub_mu);
        sh.link.close();
        sh.frames.clear();
    }
    return kOfxStatOK;
}

OfxStatus on_render(OfxImageEffectHandle effect, OfxPropertySetHandle in_args) {
    Instance *inst = instance_of(effect);
    if (!inst) return kOfxStatErrBadHandle;
    const OfxTime time = get_double(in_args, kOfxPropTime);
    int w[4] = {0, 0, 0, 0};
    g_prop->propGetIntN(in_args, kOfxImageEffectPropRenderWindow, 4, w);
    const OfxRectI window{w[0], w[1], w[2], w[3]};

    OfxPropertySetHandle dst_img = nullptr, src_img = nullptr;
    if (g_effect->clipGetImage(inst->output, time, nullptr, &dst_img) != kOfxStatOK)
        return kOfxStatFailed;
    ImageView dst, src;
    if (!image_view(dst_img, dst)) {
        g_effect->clipReleaseImage(dst_img);
        return kOfxStatErrUnsupported;
    }
    // No source image (kOfxStatFailed) is transparent black by the OFX spec.
    if (g_effect->clipGetImage(inst->source, time, nullptr, &src_img) != kOfxStatOK)
        src_img = nullptr;
    if (src_img && !image_view(src_img, src)) src = ImageView{};

    bool from_cache = false;
    if (src.data && src.float_rgba && dst.float_rgba) {
        const int frame = int(std::lround(time));
        const Params p = read_params(*inst, time);
        uint64_t fp = source_fingerprint(src, inst->identity);
        if (p.holdout) {  // a changed matte is a changed frame; an unreadable one matches nothing
            std::vector<float> matte;
            std::string error;
            fp = fetch_matte(*inst, time, src.bounds, matte, error)
                     ? plane_fingerprint(matte, src.width(), src.height(), fp)
                     : ~fp;
        }
        const std::string path = cache_path(cache_root(), param_hash(p), frame, fp);
        std::shared_ptr<const CachedFrame> cached = shared().frames.get(path);
        if (!cached) {
            auto loaded = std::make_shared<CachedFrame>();
            if (cache_load(path, *loaded)) {
                cached = loaded;
                shared().frames.put(path, cached);
            }
        }
        if (cached && std::memcmp(&cached->bounds, &src.bounds, sizeof(OfxRectI)) == 0) {
            copy_cached(dst, *cached, window);
            from_cache = true;
        }
    }
    if (!from_cache) copy_window(dst, src, window);
    if (src_img) g_effect->clipReleaseImage(src_img);
    g_effect->clipReleaseImage(dst_img);
    return kOfxStatOK;
}

OfxStatus on_frames_needed(OfxImageEffectHandle effect, OfxPropertySetHandle in_args,
                           OfxPropertySetHandle out_args) {
    // Render reads only the current frame; the wide reads happen in "Dub range".
    const double t = get_double(in_args, kOfxPropTime);
    const double range[2] = {t, t};
    const std::string prefix = kOfxImageClipPropFrameRangePrefix;
    g_prop->propSetDoubleN(out_args, (prefix + kOfxImageEffectSimpleSourceClipName).c_str(), 2,
                           range);
    const Instance *inst = instance_of(effect);
    if (inst && inst->holdout)
        g_prop->propSetDoubleN(out_args, (prefix + kClipHoldout).c_str(), 2, range);
    return kOfxStatOK;
}

OfxStatus on_instance_changed(OfxImageEffectHandle effect, OfxPropertySetHandle in_args) {
    if (get_string(in_args, kOfxPropType) != kOfxTypeParameter ||
        get_string(in_args, kOfxPropName) != kParamDub ||
        get_string(in_args, kOfxPropChangeReason) != kOfxChangeUserEdited)
        return kOfxStatReplyDefault;
    Instance *inst = instance_of(effect);
    if (!inst) return kOfxStatErrBadHandle;
    return dub_range(effect, *inst, get_double(in_args, kOfxPropTime));
}

OfxStatus main_entry(const char *action, const void *handle, OfxPropertySetHandle in_args,
                     OfxPropertySetHandle out_args) {
    auto effect = static_cast<OfxImageEffectHandle>(const_cast<void *>(handle));
    try {
        if (std::strcmp(action, kOfxActionLoad) == 0) return on_load();
        if (std::strcmp(action, kOfxActionUnload) == 0) {
            std::lock_guard<std::mutex> lock(shared().dub_mu);
            shared().link.close();
            return kOfxStatOK;
        }
        if (std::strcmp(action, kOfxActionDescribe) == 0) return on_describe(effect);
        if (std::strcmp(action, kOfxImageEffectActionDescribeInContext) == 0)
            return on_describe_in_context(effect, in_args);
        if (std::strcmp(action, kOfxActionCreateInstance) == 0) return on_create_instance(effect);
        if (std::strcmp(action, kOfxActionDestroyInstance) == 0)
            return on_destroy_instance(effect);
        if (std::strcmp(action, kOfxImageEffectActionRender) == 0)
            return on_render(effect, in_args);
        if (std::strcmp(action, kOfxImageEffectActionGetFramesNeeded) == 0)
            return on_frames_needed(effect, in_args, out_args);
        if (std::strcmp(action, kOfxActionInstanceChanged) == 0)
            return on_instance_changed(effect, in_args);
        if (std::strcmp(action, kOfxActionPurgeCaches) == 0) {
            shared().frames.clear();  // the files on disk stay: they are the cache
            return kOfxStatOK;
        }
    } catch (const std::exception &exc) {
        // An exception must never cross into the host (C ABI).
        std::fprintf(stderr, "EdiDub: %s failed: %s\n", action, exc.what());
        return kOfxStatErrUnknown;
    } catch (...) {
        return kOfxStatErrUnknown;
    }
    return kOfxStatReplyDefault;
}

void set_host(OfxHost *host) { g_host = host; }

OfxPlugin g_plugin = {
    kOfxImageEffectPluginApi, kOfxImageEffectPluginApiVersion, kPluginId, 1, 0, set_host,
    main_entry,
};

}  // namespace
}  // namespace edidub

EDIDUB_EXPORT int OfxGetNumberOfPlugins(void) { return 1; }

EDIDUB_EXPORT OfxPlugin *OfxGetPlugin(int nth) { return nth == 0 ? &edidub::g_plugin : nullptr; }
