#include "rotation.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "fileio.h"

namespace hbf::stages::file {
namespace fs = std::filesystem;
namespace {

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

std::string err(const std::string& what, int e) { return what + ": " + std::strerror(e); }

// fileio's write_all, with the reason as text.
std::string write_out(int fd, const char* p, size_t n, const std::string& to) {
    int e = hbf::write_all(fd, p, n);
    return e ? err("write to " + to, e) : "";
}

// "20261129T175400.123Z": sorts as the times do.
bool is_stamp(std::string_view s) {
    if (s.size() != 20 || s[8] != 'T' || s[15] != '.' || s[19] != 'Z') return false;
    for (size_t i : {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 16, 17, 18})
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

const char* extension(const std::string& codec) { return codec == "gzip" ? ".gz" : codec == "zstd" ? ".zst" : ""; }

}  // namespace

std::string compress_file(const std::string& from, const std::string& to, const std::string& codec) {
    Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.fd < 0) return err("cannot open " + from, errno);
    struct stat st{};
    ::fstat(in.fd, &st);
    Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777));
    if (out.fd < 0) return err("cannot create " + to, errno);
    std::vector<char> ibuf(1 << 20), obuf(1 << 20);
    std::string why;
    if (codec == "gzip") {
        z_stream z{};
        // windowBits 15 + 16: a gzip member, as gzip(1) writes it.
        if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return "deflateInit2 failed";
        std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, deflateEnd);
        for (bool eof = false; !eof && why.empty();) {
            ssize_t r = ::read(in.fd, ibuf.data(), ibuf.size());
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) return err("read of " + from, errno);
            eof = r == 0;
            z.next_in = reinterpret_cast<Bytef*>(ibuf.data());
            z.avail_in = uInt(r);
            do {
                z.next_out = reinterpret_cast<Bytef*>(obuf.data());
                z.avail_out = uInt(obuf.size());
                deflate(&z, eof ? Z_FINISH : Z_NO_FLUSH);
                why = write_out(out.fd, obuf.data(), obuf.size() - z.avail_out, to);
            } while (why.empty() && z.avail_out == 0);
        }
    } else if (codec == "zstd") {
        std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, 3);
        for (bool eof = false; !eof && why.empty();) {
            ssize_t r = ::read(in.fd, ibuf.data(), ibuf.size());
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) return err("read of " + from, errno);
            eof = r == 0;
            ZSTD_inBuffer zin{ibuf.data(), size_t(r), 0};
            for (bool done = false; !done && why.empty();) {
                ZSTD_outBuffer zout{obuf.data(), obuf.size(), 0};
                size_t left = ZSTD_compressStream2(cctx.get(), &zout, &zin, eof ? ZSTD_e_end : ZSTD_e_continue);
                if (ZSTD_isError(left)) return std::string("zstd: ") + ZSTD_getErrorName(left);
                why = write_out(out.fd, obuf.data(), zout.pos, to);
                done = eof ? left == 0 : zin.pos == zin.size;
            }
        }
    } else {
        return "unknown compression '" + codec + "'";
    }
    if (why.empty() && ::fsync(out.fd) != 0) why = err("fsync of " + to, errno);
    return why;
}

Rotator::Rotator(std::string path, RotatePolicy policy, Report on_error)
    : path_(std::move(path)), policy_(std::move(policy)), on_error_(std::move(on_error)) {}

Rotator::~Rotator() { stop(); }

bool Rotator::due(uint64_t size, std::chrono::system_clock::time_point born) const {
    if (policy_.max_size && size >= policy_.max_size) return true;
    return policy_.max_age.count() > 0 && size > 0 && std::chrono::system_clock::now() - born >= policy_.max_age;
}

std::string Rotator::rotated_name(std::chrono::system_clock::time_point t) const {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    std::time_t secs = std::time_t(ms / 1000);
    std::tm tm;
    gmtime_r(&secs, &tm);
    char buf[32];
    size_t n = std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", int(ms % 1000));
    return path_ + "." + buf;
}

int Rotator::rotate() {
    // Later than every stamp this rotator gave, even one whose file keep has deleted meanwhile:
    // a reused stamp would sort before newer files and be pruned first.
    auto t = std::max(std::chrono::system_clock::now(), last_ + std::chrono::milliseconds(1));
    std::string to;
    std::error_code ec;
    // Two rotations within a millisecond: the later one takes the next free millisecond.
    for (;; t += std::chrono::milliseconds(1)) {
        to = rotated_name(t);
        std::string ext = extension(policy_.compress);
        if (!fs::exists(to, ec) && (ext[0] == 0 || !fs::exists(to + ext, ec))) break;
    }
    if (::rename(path_.c_str(), to.c_str()) != 0) return errno;
    last_ = t;
    {
        std::lock_guard lk(m_);
        pending_.push_back(to);
    }
    cv_.notify_one();
    return 0;
}

std::vector<std::string> Rotator::rotated() const {
    fs::path p(path_);
    fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    std::string prefix = p.filename().string() + ".";
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (name.size() < prefix.size() + 20 || name.compare(0, prefix.size(), prefix) != 0) continue;
        std::string_view rest(name);
        rest.remove_prefix(prefix.size());
        if (!is_stamp(rest.substr(0, 20))) continue;
        std::string_view ext = rest.substr(20);
        if (ext.empty() || ext == ".gz" || ext == ".zst") out.push_back((dir / name).string());
    }
    // By stamp; a compressed and an uncompressed copy of one stamp (a crash between the
    // compressor's rename and unlink) sort together.
    std::sort(out.begin(), out.end());
    return out;
}

void Rotator::start() {
    std::vector<std::string> left;
    std::string ext = extension(policy_.compress);
    std::error_code ec;
    for (const auto& f : rotated()) {
        if (ext[0] == 0 || f.ends_with(".gz") || f.ends_with(".zst")) continue;
        if (fs::exists(f + ext, ec)) fs::remove(f + ext + ".tmp", ec);
        left.push_back(f);
    }
    {
        std::lock_guard lk(m_);
        stopping_ = false;
        pending_.insert(pending_.end(), left.begin(), left.end());
    }
    worker_ = std::thread([this] { work(); });
    cv_.notify_one();
}

void Rotator::stop() {
    {
        std::lock_guard lk(m_);
        stopping_ = true;
    }
    cv_.notify_one();
    if (worker_.joinable()) worker_.join();
}

void Rotator::work() {
    std::unique_lock lk(m_);
    for (;;) {
        cv_.wait(lk, [&] { return stopping_ || !pending_.empty(); });
        if (stopping_) return;
        std::string f = pending_.front();
        pending_.pop_front();
        lk.unlock();
        std::string ext = extension(policy_.compress);
        std::error_code ec;
        if (ext[0] != 0 && fs::exists(f, ec)) {  // pruned meanwhile: nothing to compress
            std::string to = f + ext, tmp = to + ".tmp";
            std::string why = compress_file(f, tmp, policy_.compress);
            if (why.empty() && ::rename(tmp.c_str(), to.c_str()) != 0) why = err("rename to " + to, errno);
            if (why.empty()) {
                ::unlink(f.c_str());
            } else {
                ::unlink(tmp.c_str());
                on_error_("compressing " + f + " failed (left uncompressed): " + why);
            }
        }
        prune();
        lk.lock();
    }
}

void Rotator::prune() {
    auto files = rotated();
    // A stamp present both compressed and not counts once: the uncompressed copy goes first.
    size_t n = files.size();
    for (size_t i = 0; i + 1 < files.size(); ++i)
        if (files[i + 1].starts_with(files[i] + ".")) --n;
    for (size_t i = 0; n > policy_.keep && i < files.size(); ++i) {
        bool twin = i + 1 < files.size() && files[i + 1].starts_with(files[i] + ".");
        if (::unlink(files[i].c_str()) != 0 && errno != ENOENT) on_error_(err("cannot delete " + files[i], errno));
        if (!twin) --n;
    }
}

}  // namespace hbf::stages::file
