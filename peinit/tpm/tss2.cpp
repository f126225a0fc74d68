#include "peinit/tpm/tss2.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace peinit::tpm {

namespace {

struct Libraries {
    const char* tctildr = "libtss2-tctildr.so.0";
    const char* rc = "libtss2-rc.so.0";
    const char* esys = "libtss2-esys.so.0";
    const char* mu = "libtss2-mu.so.0";
};

Result<const Tss2*> LoadOnce() {
    static Tss2 tss;
    const Libraries sonames;
    void* handles[4] = {};
    const char* names[4] = {sonames.tctildr, sonames.rc, sonames.esys, sonames.mu};
    for (int i = 0; i < 4; ++i) {
        // RTLD_NODELETE: the pointers stay valid for the life of the process.
        handles[i] = dlopen(names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        if (handles[i] == nullptr) {
            const char* why = dlerror();
            return Err(std::string("TPM software stack not available: ") +
                       (why != nullptr ? why : names[i]));
        }
    }
    auto handle_of = [&](const char* lib) {
        for (int i = 0; i < 4; ++i) {
            if (names[i] == lib) return handles[i];
        }
        return static_cast<void*>(nullptr);
    };
#define PEINIT_TSS2_RESOLVE(lib, fn)                                                        \
    {                                                                                       \
        void* sym = dlsym(handle_of(sonames.lib), #fn);                                     \
        if (sym == nullptr) {                                                               \
            return Err(std::string("TPM software stack: ") + sonames.lib + " lacks " #fn); \
        }                                                                                   \
        tss.fn = reinterpret_cast<decltype(tss.fn)>(sym);                                   \
    }
    PEINIT_TSS2_FUNCTIONS(PEINIT_TSS2_RESOLVE)
#undef PEINIT_TSS2_RESOLVE
    return static_cast<const Tss2*>(&tss);
}

}  // namespace

Result<const Tss2*> LoadTss2() {
    static std::once_flag once;
    static Result<const Tss2*> loaded = Err("not loaded");
    std::call_once(once, [] { loaded = LoadOnce(); });
    return loaded;
}

std::string TssError(const Tss2& tss, const std::string& what, TSS2_RC rc) {
    char code[16];
    std::snprintf(code, sizeof code, "0x%x", rc);
    const char* text = tss.Tss2_RC_Decode != nullptr ? tss.Tss2_RC_Decode(rc) : nullptr;
    return what + ": " + (text != nullptr ? text : "unknown error") + " (" + code + ")";
}

std::string TctiFromEnvironment() {
    const char* env = std::getenv(kTctiEnv);
    return env != nullptr && *env != '\0' ? std::string(env) : std::string(kDefaultTcti);
}

Result<EsysContext> EsysContext::Open(const std::string& tcti) {
    auto tss = LoadTss2();
    if (!tss) return tss.error();
    TSS2_TCTI_CONTEXT* tcti_ctx = nullptr;
    TSS2_RC rc = (*tss)->Tss2_TctiLdr_Initialize(tcti.c_str(), &tcti_ctx);
    if (rc != TSS2_RC_SUCCESS) return Err(TssError(**tss, "TPM " + tcti, rc));
    ESYS_CONTEXT* esys = nullptr;
    rc = (*tss)->Esys_Initialize(&esys, tcti_ctx, nullptr);
    if (rc != TSS2_RC_SUCCESS) {
        (*tss)->Tss2_TctiLdr_Finalize(&tcti_ctx);
        return Err(TssError(**tss, "TPM " + tcti + ": ESYS", rc));
    }
    return EsysContext(*tss, tcti_ctx, esys, tcti);
}

EsysContext::EsysContext(EsysContext&& other) noexcept
    : tss_(other.tss_), tcti_ctx_(other.tcti_ctx_), esys_(other.esys_), tcti_(std::move(other.tcti_)) {
    other.tcti_ctx_ = nullptr;
    other.esys_ = nullptr;
}

EsysContext& EsysContext::operator=(EsysContext&& other) noexcept {
    if (this != &other) {
        Close();
        tss_ = other.tss_;
        tcti_ctx_ = other.tcti_ctx_;
        esys_ = other.esys_;
        tcti_ = std::move(other.tcti_);
        other.tcti_ctx_ = nullptr;
        other.esys_ = nullptr;
    }
    return *this;
}

EsysContext::~EsysContext() { Close(); }

void EsysContext::Close() {
    if (esys_ != nullptr) tss_->Esys_Finalize(&esys_);
    if (tcti_ctx_ != nullptr) tss_->Tss2_TctiLdr_Finalize(&tcti_ctx_);
    esys_ = nullptr;
    tcti_ctx_ = nullptr;
}

}  // namespace peinit::tpm
