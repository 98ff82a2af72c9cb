// The plugin's end of the relay protocol: length-prefixed messages over a Unix domain socket.
// No gRPC or protobuf in the host process (DESIGN §5); the framing is in ofx_stub/README.md and
// mirrored by bridge/ofx_relay.py.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace edidub {

// Header: "EDOX" | u16 version | u16 type | u32 payload length, all little-endian.
constexpr char kMagic[4] = {'E', 'D', 'O', 'X'};
constexpr uint16_t kProtocolVersion = 1;
constexpr uint32_t kMaxPayload = 1u << 30;

enum MsgType : uint16_t {
    kHello = 1,
    kBegin = 2,
    kFrame = 3,
    kRun = 4,
    kPoll = 5,
    kCancel = 6,
    kFetch = 7,
    kEnd = 8,
    kOk = 100,
    kError = 101,
    kStatus = 102,
};

struct Message {
    uint16_t type = 0;
    std::vector<uint8_t> payload;
    std::string text() const { return std::string(payload.begin(), payload.end()); }
};

// "key=value\n" lines: the text payload of BEGIN, OK and STATUS.
std::string encode_fields(const std::map<std::string, std::string> &fields);
std::map<std::string, std::string> decode_fields(const std::string &text);

class RelayLink {
public:
    RelayLink() = default;
    ~RelayLink();
    RelayLink(const RelayLink &) = delete;
    RelayLink &operator=(const RelayLink &) = delete;

    // Connect to the relay's socket; false (and `error`) when nobody listens there.
    bool connect_to(const std::string &socket_path, std::string &error);
    bool connected() const { return fd_ >= 0; }
    void close();

    // Send one request and read one reply; false (and `error`) on a broken connection.
    bool request(uint16_t type, const void *payload, size_t size, Message &reply,
                 std::string &error);
    bool request(uint16_t type, const std::string &text, Message &reply, std::string &error) {
        return request(type, text.data(), text.size(), reply, error);
    }

private:
    bool send_all(const void *data, size_t size, std::string &error);
    bool recv_all(void *data, size_t size, std::string &error);
    int fd_ = -1;
};

}  // namespace edidub
