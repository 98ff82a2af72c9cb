#include "relay_link.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace edidub {

namespace {

void put_u16(uint8_t *p, uint16_t v) {
    p[0] = uint8_t(v);
    p[1] = uint8_t(v >> 8);
}

void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}

uint16_t get_u16(const uint8_t *p) { return uint16_t(p[0] | (p[1] << 8)); }

uint32_t get_u32(const uint8_t *p) {
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
           (uint32_t(p[3]) << 24);
}

}  // namespace

std::string encode_fields(const std::map<std::string, std::string> &fields) {
    std::string out;
    for (const auto &kv : fields) out += kv.first + "=" + kv.second + "\n";
    return out;
}

std::map<std::string, std::string> decode_fields(const std::string &text) {
    std::map<std::string, std::string> fields;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(start, end - start);
        size_t eq = line.find('=');
        if (eq != std::string::npos) fields[line.substr(0, eq)] = line.substr(eq + 1);
        start = end + 1;
    }
    return fields;
}

RelayLink::~RelayLink() { close(); }

void RelayLink::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

bool RelayLink::connect_to(const std::string &socket_path, std::string &error) {
    close();
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
        error = "relay socket path is empty or longer than " +
                std::to_string(sizeof(addr.sun_path) - 1) + " bytes: '" + socket_path + "'";
        return false;
    }
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = std::string("cannot create a socket: ") + std::strerror(errno);
        return false;
    }
    if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
        error = "no relay is listening at " + socket_path + " (" + std::strerror(errno) + ")";
        ::close(fd);
        return false;
    }
    fd_ = fd;
    return true;
}

bool RelayLink::send_all(const void *data, size_t size, std::string &error) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    while (size > 0) {
        // MSG_NOSIGNAL: a relay that went away must not SIGPIPE the host application.
        ssize_t n = ::send(fd_, p, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            error = std::string("lost the relay connection while sending: ") +
                    std::strerror(errno);
            close();
            return false;
        }
        p += n;
        size -= size_t(n);
    }
    return true;
}

bool RelayLink::recv_all(void *data, size_t size, std::string &error) {
    uint8_t *p = static_cast<uint8_t *>(data);
    while (size > 0) {
        ssize_t n = ::recv(fd_, p, size, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            error = n == 0 ? std::string("the relay closed the connection")
                           : std::string("lost the relay connection: ") + std::strerror(errno);
            close();
            return false;
        }
        p += n;
        size -= size_t(n);
    }
    return true;
}

bool RelayLink::request(uint16_t type, const void *payload, size_t size, Message &reply,
                        std::string &error) {
    if (fd_ < 0) {
        error = "not connected to the relay";
        return false;
    }
    if (size > kMaxPayload) {
        error = "message too large for the relay protocol";
        return false;
    }
    uint8_t head[12];
    std::memcpy(head, kMagic, 4);
    put_u16(head + 4, kProtocolVersion);
    put_u16(head + 6, type);
    put_u32(head + 8, uint32_t(size));
    if (!send_all(head, sizeof(head), error)) return false;
    if (size && !send_all(payload, size, error)) return false;
    if (!recv_all(head, sizeof(head), error)) return false;
    if (std::memcmp(head, kMagic, 4) != 0 || get_u16(head + 4) != kProtocolVersion) {
        error = "the relay answered with an unknown protocol (version mismatch?)";
        close();
        return false;
    }
    reply.type = get_u16(head + 6);
    uint32_t length = get_u32(head + 8);
    if (length > kMaxPayload) {
        error = "the relay announced an oversized reply";
        close();
        return false;
    }
    reply.payload.resize(length);
    return length == 0 || recv_all(reply.payload.data(), length, error);
}

}  // namespace edidub
