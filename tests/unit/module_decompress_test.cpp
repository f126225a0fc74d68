// Decoder memory limits for compressed modules (peinit/sys/module_decompress.h): a module whose
// header asks for a larger xz dictionary or zstd window than kMaxDecoderMemory is refused before
// the decoder allocates it, with the reason named (issue 24 point 6).

#include "peinit/sys/module_decompress.h"

#include <gtest/gtest.h>
#include <lzma.h>
#include <zstd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/unit/fake_module_elf.h"

namespace peinit {
namespace {

std::span<const std::byte> Span(const std::vector<std::byte>& v) { return {v.data(), v.size()}; }

// The module, xz-compressed as the kernel does, with the dictionary size in its block header
// rewritten to `dict_size` (the header's CRC32 re-encoded by liblzma): the data still decodes
// with any dictionary at least as large as the one it was made with.
std::vector<std::byte> XzWithDictionary(const std::vector<std::byte>& elf, uint32_t dict_size) {
    auto xz = CompressModule(ModuleCompression::kXz, Span(elf)).value();
    auto* header = reinterpret_cast<uint8_t*>(xz.data()) + LZMA_STREAM_HEADER_SIZE;
    lzma_stream_flags flags{};
    EXPECT_EQ(lzma_stream_header_decode(&flags, reinterpret_cast<uint8_t*>(xz.data())), LZMA_OK);
    lzma_filter filters[LZMA_FILTERS_MAX + 1];
    lzma_block block{};
    block.version = 0;
    block.check = flags.check;
    block.filters = filters;
    block.header_size = lzma_block_header_size_decode(header[0]);
    EXPECT_EQ(lzma_block_header_decode(&block, nullptr, header), LZMA_OK);
    EXPECT_EQ(filters[0].id, LZMA_FILTER_LZMA2);
    static_cast<lzma_options_lzma*>(filters[0].options)->dict_size = dict_size;
    EXPECT_EQ(lzma_block_header_encode(&block, header), LZMA_OK);
    for (int i = 0; filters[i].id != LZMA_VLI_UNKNOWN; ++i) std::free(filters[i].options);
    return xz;
}

// The module as a zstd frame of unknown content size (as a streaming compressor writes it), its
// Window_Descriptor rewritten to ask for 2^window_log bytes.
std::vector<std::byte> ZstdWithWindow(const std::vector<std::byte>& elf, int window_log) {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    std::vector<std::byte> out(ZSTD_compressBound(elf.size()) + 64);
    ZSTD_outBuffer dst{out.data(), out.size(), 0};
    ZSTD_inBuffer src{elf.data(), elf.size(), 0};
    EXPECT_FALSE(ZSTD_isError(ZSTD_compressStream2(c, &dst, &src, ZSTD_e_continue)));
    ZSTD_inBuffer none{nullptr, 0, 0};
    EXPECT_EQ(ZSTD_compressStream2(c, &dst, &none, ZSTD_e_end), 0u);
    ZSTD_freeCCtx(c);
    out.resize(dst.pos);
    const auto descriptor = static_cast<uint8_t>(out[4]);
    EXPECT_EQ(descriptor & 0x20, 0) << "single-segment frame has no Window_Descriptor";
    out[5] = static_cast<std::byte>((window_log - 10) << 3);  // exponent, mantissa 0
    return out;
}

TEST(ModuleDecompress, XzDictionaryOverTheLimitIsRefused) {
    const auto elf = testing::FakeModuleElf("ext4", "ext4");
    // Within the limit: decodes to the same bytes.
    auto fits = ModuleImageOf("ext4.ko.xz", Span(XzWithDictionary(elf, kMaxDecoderMemory / 2)));
    ASSERT_TRUE(fits) << fits.error().message();
    EXPECT_EQ(std::vector<std::byte>(fits->bytes().begin(), fits->bytes().end()), elf);

    auto big = ModuleImageOf("ext4.ko.xz", Span(XzWithDictionary(elf, 1536u << 20)));
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().message(),
              "ext4.ko.xz: xz: the dictionary needs more than 64 MiB of decoder memory (compress "
              "with a smaller one, e.g. xz --lzma2=dict=1MiB as the kernel does)");
}

TEST(ModuleDecompress, ZstdWindowOverTheLimitIsRefused) {
    const auto elf = testing::FakeModuleElf("ext4", "ext4");
    auto fits = ModuleImageOf("ext4.ko.zst", Span(ZstdWithWindow(elf, 26)));
    ASSERT_TRUE(fits) << fits.error().message();
    EXPECT_EQ(std::vector<std::byte>(fits->bytes().begin(), fits->bytes().end()), elf);

    // 128 MiB: zstd's own default limit would allow it.
    auto big = ModuleImageOf("ext4.ko.zst", Span(ZstdWithWindow(elf, 27)));
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().message(),
              "ext4.ko.zst: zstd: the window needs more than 64 MiB of decoder memory (compress "
              "without --long or --ultra)");
}

}  // namespace
}  // namespace peinit
