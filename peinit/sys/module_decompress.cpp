#include "peinit/sys/module_decompress.h"

#include <lzma.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <bit>

#include <semaphore>
#include <string>

namespace peinit {

namespace {

// The process-wide decoder budget (kDecoderSlots streams at once); held for one whole decode, so
// no holder ever waits for another.
std::counting_semaphore<kDecoderSlots>& DecoderSlots() {
    static std::counting_semaphore<kDecoderSlots> slots(kDecoderSlots);
    return slots;
}

class DecoderSlot {
  public:
    DecoderSlot() { DecoderSlots().acquire(); }
    ~DecoderSlot() { DecoderSlots().release(); }
    DecoderSlot(const DecoderSlot&) = delete;
    DecoderSlot& operator=(const DecoderSlot&) = delete;
};

Unexpected Bad(std::string_view path, const std::string& what) {
    return Err(std::string(path) + ": " + what, EINVAL);
}

Result<std::vector<std::byte>> Gunzip(std::string_view path, std::span<const std::byte> in) {
    z_stream z{};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return Bad(path, "gzip: cannot initialise");
    std::vector<std::byte> out(std::max<std::size_t>(in.size() * 4, 1 << 16));
    z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        if (z.total_out == out.size()) {
            if (out.size() >= kMaxModuleImageBytes) break;
            out.resize(std::min(out.size() * 2, kMaxModuleImageBytes));
        }
        z.next_out = reinterpret_cast<Bytef*>(out.data() + z.total_out);
        z.avail_out = static_cast<uInt>(out.size() - z.total_out);
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) break;
    }
    std::size_t n = z.total_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        return Bad(path, rc == Z_OK || rc == Z_BUF_ERROR ? "gzip: truncated or too large"
                                                         : "gzip: corrupt data");
    }
    out.resize(n);
    return out;
}

Result<std::vector<std::byte>> Unxz(std::string_view path, std::span<const std::byte> in) {
    lzma_stream s = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&s, kMaxDecoderMemory, LZMA_CONCATENATED) != LZMA_OK) {
        return Bad(path, "xz: cannot initialise");
    }
    std::vector<std::byte> out(std::max<std::size_t>(in.size() * 4, 1 << 16));
    s.next_in = reinterpret_cast<const uint8_t*>(in.data());
    s.avail_in = in.size();
    lzma_ret rc = LZMA_OK;
    while (rc == LZMA_OK) {
        if (s.total_out == out.size()) {
            if (out.size() >= kMaxModuleImageBytes) break;
            out.resize(std::min(out.size() * 2, kMaxModuleImageBytes));
        }
        s.next_out = reinterpret_cast<uint8_t*>(out.data() + s.total_out);
        s.avail_out = out.size() - s.total_out;
        rc = lzma_code(&s, LZMA_FINISH);
    }
    std::size_t n = s.total_out;
    lzma_end(&s);
    if (rc == LZMA_MEMLIMIT_ERROR) {
        return Bad(path, "xz: the dictionary needs more than " +
                             std::to_string(kMaxDecoderMemory >> 20) +
                             " MiB of decoder memory (compress with a smaller one, e.g. xz "
                             "--lzma2=dict=1MiB as the kernel does)");
    }
    if (rc != LZMA_STREAM_END) {
        return Bad(path, rc == LZMA_OK || rc == LZMA_BUF_ERROR ? "xz: truncated or too large"
                                                               : "xz: corrupt data");
    }
    out.resize(n);
    return out;
}

Result<std::vector<std::byte>> Unzstd(std::string_view path, std::span<const std::byte> in) {
    ZSTD_DCtx* d = ZSTD_createDCtx();
    if (!d) return Bad(path, "zstd: cannot initialise");
    // The window a frame may ask for: log2(kMaxDecoderMemory).
    constexpr int kWindowLogMax = std::bit_width(kMaxDecoderMemory) - 1;
    static_assert((std::uint64_t{1} << kWindowLogMax) == kMaxDecoderMemory);
    if (ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, kWindowLogMax))) {
        ZSTD_freeDCtx(d);
        return Bad(path, "zstd: cannot set the window limit");
    }
    std::vector<std::byte> out(std::max<std::size_t>(in.size() * 4, 1 << 16));
    ZSTD_inBuffer src{in.data(), in.size(), 0};
    ZSTD_outBuffer dst{out.data(), out.size(), 0};
    size_t rc = 1;
    while (true) {
        rc = ZSTD_decompressStream(d, &dst, &src);
        if (ZSTD_isError(rc) || rc == 0) break;
        if (dst.pos < dst.size) {
            if (src.pos == src.size) break;  // wants more input: truncated
            continue;
        }
        if (out.size() >= kMaxModuleImageBytes) break;
        out.resize(std::min(out.size() * 2, kMaxModuleImageBytes));
        dst.dst = out.data();
        dst.size = out.size();
    }
    ZSTD_freeDCtx(d);
    if (ZSTD_isError(rc) && ZSTD_getErrorCode(rc) == ZSTD_error_frameParameter_windowTooLarge) {
        return Bad(path, "zstd: the window needs more than " +
                             std::to_string(kMaxDecoderMemory >> 20) +
                             " MiB of decoder memory (compress without --long or --ultra)");
    }
    if (ZSTD_isError(rc)) return Bad(path, std::string("zstd: ") + ZSTD_getErrorName(rc));
    if (rc != 0 || src.pos != src.size) return Bad(path, "zstd: truncated or too large");
    out.resize(dst.pos);
    return out;
}

}  // namespace

Result<ModuleImage> ModuleImageOf(std::string_view path, std::span<const std::byte> bytes) {
    auto c = ModuleCompressionOf(path.substr(path.rfind('/') + 1));
    if (!c) return Bad(path, "not a module file name (.ko, .ko.gz, .ko.xz, .ko.zst)");
    if (*c == ModuleCompression::kNone) return ModuleImage::View(bytes);
    Result<std::vector<std::byte>> out = Err("");
    const DecoderSlot slot;
    switch (*c) {
        case ModuleCompression::kNone:
            break;
        case ModuleCompression::kGzip:
            out = Gunzip(path, bytes);
            break;
        case ModuleCompression::kXz:
            out = Unxz(path, bytes);
            break;
        case ModuleCompression::kZstd:
            out = Unzstd(path, bytes);
            break;
    }
    if (!out) return out.error();
    return ModuleImage::Own(std::move(*out));
}

Result<std::vector<std::byte>> CompressModule(ModuleCompression c, std::span<const std::byte> elf) {
    std::vector<std::byte> out;
    switch (c) {
        case ModuleCompression::kNone:
            return Err("CompressModule: no compression given", EINVAL);
        case ModuleCompression::kGzip: {
            z_stream z{};
            if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
                return Err("gzip: cannot initialise");
            }
            out.resize(deflateBound(&z, elf.size()) + 32);
            z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(elf.data()));
            z.avail_in = static_cast<uInt>(elf.size());
            z.next_out = reinterpret_cast<Bytef*>(out.data());
            z.avail_out = static_cast<uInt>(out.size());
            int rc = deflate(&z, Z_FINISH);
            out.resize(z.total_out);
            deflateEnd(&z);
            if (rc != Z_STREAM_END) return Err("gzip: compression failed");
            return out;
        }
        case ModuleCompression::kXz: {
            out.resize(lzma_stream_buffer_bound(elf.size()));
            size_t pos = 0;
            if (lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, nullptr,
                                        reinterpret_cast<const uint8_t*>(elf.data()), elf.size(),
                                        reinterpret_cast<uint8_t*>(out.data()), &pos,
                                        out.size()) != LZMA_OK) {
                return Err("xz: compression failed");
            }
            out.resize(pos);
            return out;
        }
        case ModuleCompression::kZstd: {
            out.resize(ZSTD_compressBound(elf.size()));
            size_t n = ZSTD_compress(out.data(), out.size(), elf.data(), elf.size(), 19);
            if (ZSTD_isError(n)) return Err(std::string("zstd: ") + ZSTD_getErrorName(n));
            out.resize(n);
            return out;
        }
    }
    return Err("CompressModule: unknown compression");
}

}  // namespace peinit
