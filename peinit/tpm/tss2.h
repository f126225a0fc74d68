#pragma once

// The TPM software stack (tpm2-tss: libtss2-esys, -mu, -rc, -tctildr), loaded on first use with
// dlopen(3), as systemd loads it. A boot without a TPM maps none of it (PID 1's start under
// emulation is dominated by mapping and binding shared objects), and peinitctl stays a program
// that needs only glibc when it is copied into the real root (peinitctl_needs_only_glibc): the
// libraries are needed only by the commands that talk to a TPM.
//
// Every function peinit calls is listed once in PEINIT_TSS2_FUNCTIONS; Tss2 holds a pointer of
// the declared type for each, so a call through it is type-checked against tpm2-tss's headers.

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <string>

#include "peinit/core/result.h"

namespace peinit::tpm {

// The TPM peinit opens unless told otherwise: the kernel's resource manager, which lets PID 1
// and peinitctl hold sessions at once. $PEINIT_TPM_TCTI overrides it (tests point it at a
// swtpm on the host: "swtpm:host=127.0.0.1,port=2321").
inline constexpr const char* kDefaultTcti = "device:/dev/tpmrm0";
inline constexpr const char* kTctiEnv = "PEINIT_TPM_TCTI";

// X(library, function): every function used, with the library (soname) that exports it.
#define PEINIT_TSS2_FUNCTIONS(X)                               \
    X(tctildr, Tss2_TctiLdr_Initialize)                        \
    X(tctildr, Tss2_TctiLdr_Finalize)                          \
    X(rc, Tss2_RC_Decode)                                      \
    X(esys, Esys_Initialize)                                   \
    X(esys, Esys_Finalize)                                     \
    X(esys, Esys_Free)                                         \
    X(esys, Esys_FlushContext)                                 \
    X(esys, Esys_TR_GetName)                                   \
    X(esys, Esys_TR_FromTPMPublic)                             \
    X(esys, Esys_GetCapability)                                \
    X(esys, Esys_PCR_Extend)                                   \
    X(esys, Esys_PCR_Read)                                     \
    X(esys, Esys_CreatePrimary)                                \
    X(esys, Esys_Quote)                                        \
    X(mu, Tss2_MU_TPM2B_PUBLIC_Marshal)                        \
    X(mu, Tss2_MU_TPM2B_ATTEST_Marshal)                        \
    X(mu, Tss2_MU_TPMS_ATTEST_Marshal)                         \
    X(mu, Tss2_MU_TPMS_ATTEST_Unmarshal)                       \
    X(mu, Tss2_MU_TPMT_SIGNATURE_Marshal)                      \
    X(mu, Tss2_MU_TPMT_SIGNATURE_Unmarshal)                    \
    X(mu, Tss2_MU_TPMT_PUBLIC_Marshal)                         \
    X(mu, Tss2_MU_TPMT_PUBLIC_Unmarshal)                       \
    X(mu, Tss2_MU_TPML_PCR_SELECTION_Marshal)                  \
    X(mu, Tss2_MU_TPML_DIGEST_Marshal)

struct Tss2 {
#define PEINIT_TSS2_POINTER(lib, fn) decltype(&::fn) fn = nullptr;
    PEINIT_TSS2_FUNCTIONS(PEINIT_TSS2_POINTER)
#undef PEINIT_TSS2_POINTER
};

// The libraries, loaded once per process (thread-safe). The error names the library and
// dlerror()'s reason ("libtss2-esys.so.0: cannot open shared object file ...") and is returned
// again on every later call.
Result<const Tss2*> LoadTss2();

// "<what>: <tpm2-tss's decoding of rc> (0x...)".
std::string TssError(const Tss2& tss, const std::string& what, TSS2_RC rc);

// $PEINIT_TPM_TCTI when set and not empty, else kDefaultTcti.
std::string TctiFromEnvironment();

// A TCTI and an ESYS context over it, finalised together. Move-only.
class EsysContext {
public:
    // Opens `tcti` ("device:/dev/tpmrm0", "swtpm:port=2321", ...). The error names the TCTI.
    static Result<EsysContext> Open(const std::string& tcti);

    EsysContext(EsysContext&& other) noexcept;
    EsysContext& operator=(EsysContext&& other) noexcept;
    EsysContext(const EsysContext&) = delete;
    EsysContext& operator=(const EsysContext&) = delete;
    ~EsysContext();

    ESYS_CONTEXT* get() const { return esys_; }
    const Tss2& tss() const { return *tss_; }
    const std::string& tcti() const { return tcti_; }

private:
    EsysContext(const Tss2* tss, TSS2_TCTI_CONTEXT* tcti_ctx, ESYS_CONTEXT* esys, std::string tcti)
        : tss_(tss), tcti_ctx_(tcti_ctx), esys_(esys), tcti_(std::move(tcti)) {}
    void Close();

    const Tss2* tss_ = nullptr;
    TSS2_TCTI_CONTEXT* tcti_ctx_ = nullptr;
    ESYS_CONTEXT* esys_ = nullptr;
    std::string tcti_;
};

}  // namespace peinit::tpm
