#include "image_boot.h"

#include "initramfs/image_definition.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#ifndef PEINIT_SOURCE_DIR
#error "PEINIT_SOURCE_DIR must be defined"
#endif
#ifndef PEINIT_BINARY_DIR
#error "PEINIT_BINARY_DIR must be defined"
#endif
#ifndef PEINIT_IMAGE_TOOL
#error "PEINIT_IMAGE_TOOL must be defined"
#endif

namespace fs = std::filesystem;

namespace peinit::testing {

std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
    for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
        s.replace(pos, from.size(), to);
    }
}

std::string ShellQuote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    return out + "'";
}

int Sh(const std::string& command, std::string& log) {
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) return -1;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) log.append(buf.data(), n);
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Section::Text() const {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

std::string Section::Line(const std::string& needle) const {
    for (const auto& l : lines) {
        if (l.find(needle) != std::string::npos) return l;
    }
    return "";
}

std::map<std::string, Section> ResultSections(
    const std::vector<std::string>& lines, const std::string& key,
    const std::function<void(const std::string&)>& outside) {
    const std::string begin = key + "-BEGIN ", end = key + "-END ";
    std::map<std::string, Section> sections;
    std::string current;
    for (const std::string& line : lines) {
        if (line.starts_with(begin)) {
            current = line.substr(begin.size());
            sections[current];
        } else if (line.starts_with(end)) {
            const size_t rc_at = line.find(" rc=");
            if (!current.empty() && rc_at != std::string::npos) {
                sections[current].rc = std::atoi(line.c_str() + rc_at + 4);
            }
            current.clear();
        } else if (!current.empty()) {
            sections[current].lines.push_back(line);
        } else if (outside) {
            outside(line);
        }
    }
    return sections;
}

ScratchDir::ScratchDir() {
    char tmpl[] = "/tmp/peinit-boot-test.XXXXXX";
    if (mkdtemp(tmpl) != nullptr) path = tmpl;
}

ScratchDir::~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
}

std::vector<std::string> ImageBootResult::Grep(const std::string& needle) const {
    std::vector<std::string> out;
    for (const auto& line : qemu.lines()) {
        if (line.find(needle) != std::string::npos) out.push_back(line);
    }
    return out;
}

std::vector<std::string> ImageBootResult::Results(const std::string& needle) const {
    std::vector<std::string> out;
    for (const auto& line : qemu.result_lines()) {
        if (line.find(needle) != std::string::npos) out.push_back(line);
    }
    return out;
}

std::map<std::string, std::string> ImageBootResult::Probes() const {
    std::map<std::string, std::string> out;
    for (const auto& line : qemu.result_lines()) {
        if (!line.starts_with("PROBE ")) continue;
        std::istringstream in(line.substr(6));
        std::string name;
        in >> name;
        std::string rest;
        std::getline(in, rest);
        if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
        out[name] = rest;
    }
    return out;
}

std::string KernelDirFor(const std::string& kernel) {
    const char* env =
        std::getenv(kernel == "debian" ? "PEINIT_DEBIAN_KERNEL_DIR" : "PEINIT_KERNEL_DIR");
    return env != nullptr ? env : "";
}

ImageBootResult BuildAndBoot(const ImageBoot& boot) {
    ImageBootResult result;
    std::string kernel_dir = boot.kernel_dir.empty() ? KernelDirFor(boot.kernel) : boot.kernel_dir;
    if (kernel_dir.empty()) {
        result.build_error = "no kernel: set " +
                             std::string(boot.kernel == "debian" ? "PEINIT_DEBIAN_KERNEL_DIR"
                                                                 : "PEINIT_KERNEL_DIR") +
                             " (tests/run does)";
        return result;
    }
    fs::path dir = fs::current_path() / "boot-artifacts" / boot.name;
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir / "image", ec);

    fs::path image_dir = boot.image_dir;
    if (image_dir.empty()) {
        image_dir = dir / "image";
        std::string toml = boot.image_toml;
        ReplaceAll(toml, "@SRC@", PEINIT_SOURCE_DIR);
        ReplaceAll(toml, "@BUILD@", PEINIT_BINARY_DIR);
        ReplaceAll(toml, "@CASE@",
                   std::string(PEINIT_SOURCE_DIR) + "/tests/boot/images/" + boot.name);
        std::ofstream(image_dir / "image.toml") << toml;
    }

    fs::path initrd = dir / "initrd.img";
    std::string command = ShellQuote(PEINIT_IMAGE_TOOL) + " build " +
                          ShellQuote(image_dir.string()) + " -o " + ShellQuote(initrd.string()) +
                          " --kernel-dir " + ShellQuote(kernel_dir);
    std::string output;
    if (Sh(command, output) != 0) {
        result.build_error = "peinit-image build failed:\n" + output;
        return result;
    }

    std::string kernel_image = kernel_dir + "/bzImage";
    if (boot.kernel == "debian") {
        std::ifstream kver_file(kernel_dir + "/kver");
        std::string kver;
        std::getline(kver_file, kver);
        kernel_image = kernel_dir + "/boot/vmlinuz-" + kver;
    }
    // The definition's own cmdline comes first, as `peinit-image boot` puts it; the case's
    // `append` after it (the kernel takes the last of a repeated parameter).
    auto definition = image::LoadImageDefinition(image_dir.string());
    if (!definition) {
        result.build_error = "image definition: " + definition.error().message();
        return result;
    }
    QemuOptions options;
    options.kernel = kernel_image;
    options.initrd = initrd.string();
    options.append = definition->cmdline;
    if (!boot.append.empty()) options.append += (options.append.empty() ? "" : " ") + boot.append;
    options.smp = boot.smp;
    options.timeout = boot.timeout;
    options.extra_args = boot.qemu_args;
    options.tpm = boot.tpm;
    options.monitor = boot.monitor;
    options.log_file = (dir / "serial.log").string();
    result.qemu = run_qemu(options);
    return result;
}

std::string Explain(const ImageBootResult& r) {
    if (!r.build_error.empty()) return r.build_error;
    std::string out = r.qemu.describe() + "\n" + r.qemu.output + "\n--- results channel (" +
                      kResultsDevice + ") ---\n" + r.qemu.results;
    if (!r.qemu.monitor_log.empty()) out += "\n--- QEMU monitor ---\n" + r.qemu.monitor_log;
    return out;
}

std::string KernelRelease(const std::string& kernel_dir) {
    std::string kver = ReadFile(kernel_dir + "/kver");
    while (!kver.empty() && (kver.back() == '\n' || kver.back() == ' ')) kver.pop_back();
    return kver;
}

std::string ModulePath(const std::string& moddir, const std::string& name) {
    std::ifstream dep(fs::path(moddir) / "modules.dep");
    std::string line;
    while (std::getline(dep, line)) {
        std::string path = line.substr(0, line.find(':'));
        if (fs::path(path).filename() == name + ".ko") return (fs::path(moddir) / path).string();
    }
    return "";
}

std::string AddSignedBootPackage(const std::string& image_dir, const std::string& work,
                                 const std::string& kernel_dir,
                                 const std::vector<std::string>& modules,
                                 const std::string& pkg_tool) {
    const std::string kver = KernelRelease(kernel_dir);
    const std::string moddir = kernel_dir + "/modroot/lib/modules/" + kver;
    std::string files;
    for (const auto& m : modules) {
        std::string path = ModulePath(moddir, m);
        if (path.empty()) return m + " is not in " + moddir;
        files += " " + ShellQuote(path);
    }
    const fs::path w = work;
    std::string log;
    if (Sh(ShellQuote(pkg_tool) + " keygen --out-dir " + ShellQuote((w / "keys").string()), log) !=
            0 ||
        Sh(ShellQuote(pkg_tool) + " create --name boot --version 1 --kver " + kver + " -o " +
               ShellQuote((w / "boot.pkg").string()) + " --sign-key " +
               ShellQuote((w / "keys/package-signing.key").string()) + files,
           log) != 0) {
        return log;
    }
    std::ofstream(fs::path(image_dir) / "image.toml", std::ios::app)
        << "\n[[files]]\nsrc = \"" << (w / "boot.pkg").string()
        << "\"\ndst = \"/usr/lib/peinit/packages/boot.pkg\"\n\n[[files]]\nsrc = \""
        << (w / "keys/package-signing.pub").string()
        << "\"\ndst = \"/etc/peinit/keys/package-signing.pub\"\n\n[[files]]\nsrc = \""
        << ON_CHANNEL_PATH << "\"\ndst = \"/usr/bin/on_channel\"\n";
    return "";
}

}  // namespace peinit::testing
