#include "peinit/sys/block_devices.h"

#include <blkid/blkid.h>
#include <fcntl.h>
#include <libmount/libmount.h>

#include <algorithm>
#include <filesystem>
#include <memory>

namespace peinit {

namespace {

std::string Value(blkid_probe pr, const char* name) {
    const char* data = nullptr;
    size_t len = 0;
    if (blkid_probe_lookup_value(pr, name, &data, &len) != 0 || !data) return "";
    return std::string(data, strnlen(data, len));
}

}  // namespace

std::string BlockDevice::Describe() const {
    std::string s = name + " (" + (type.empty() ? "no file system" : type);
    for (const auto& [tag, v] : {std::pair{"UUID", &uuid}, {"LABEL", &label},
                                 {"PARTUUID", &partuuid}, {"PARTLABEL", &partlabel}}) {
        if (!v->empty()) s += std::string(" ") + tag + "=" + *v;
    }
    return s + ")";
}

bool BlockDevice::Matches(const RootSpec& spec) const {
    if (spec.tag == "UUID") return !uuid.empty() && RootTagValueMatches(spec, uuid);
    if (spec.tag == "PARTUUID") return !partuuid.empty() && RootTagValueMatches(spec, partuuid);
    if (spec.tag == "LABEL") return !label.empty() && RootTagValueMatches(spec, label);
    if (spec.tag == "PARTLABEL") return !partlabel.empty() && RootTagValueMatches(spec, partlabel);
    return false;
}

BlockDevice ProbeBlockDevice(const std::string& name, const std::string& path) {
    BlockDevice dev;
    dev.name = name;
    dev.path = path;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return dev;
    std::unique_ptr<std::remove_pointer_t<blkid_probe>, decltype(&blkid_free_probe)> pr(
        blkid_new_probe(), blkid_free_probe);
    if (pr && blkid_probe_set_device(pr.get(), fd, 0, 0) == 0) {
        blkid_probe_enable_superblocks(pr.get(), 1);
        blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID |
                                                        BLKID_SUBLKS_LABEL);
        blkid_probe_enable_partitions(pr.get(), 1);
        blkid_probe_set_partitions_flags(pr.get(), BLKID_PARTS_ENTRY_DETAILS);
        // 0: found, 1: nothing, -2: ambivalent (two signatures: not safe to mount by type).
        if (blkid_do_safeprobe(pr.get()) == 0) {
            dev.type = Value(pr.get(), "TYPE");
            dev.uuid = Value(pr.get(), "UUID");
            dev.label = Value(pr.get(), "LABEL");
            dev.partuuid = Value(pr.get(), "PART_ENTRY_UUID");
            dev.partlabel = Value(pr.get(), "PART_ENTRY_NAME");
        }
    }
    close(fd);
    return dev;
}

std::vector<BlockDevice> ProbeBlockDevices(const std::string& sys_class_block,
                                           const std::string& dev_dir) {
    namespace fs = std::filesystem;
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(sys_class_block, ec)) {
        names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    std::vector<BlockDevice> devices;
    for (const auto& name : names) {
        devices.push_back(ProbeBlockDevice(name, (fs::path(dev_dir) / name).string()));
        fs::directory_iterator holders(fs::path(sys_class_block) / name / "holders", ec);
        devices.back().held = !ec && holders != fs::directory_iterator();
    }
    return devices;
}

Result<MountOptions> ParseMountOptions(const std::string& options) {
    MountOptions out;
    if (options.empty()) return out;
    char* user = nullptr;
    char* vfs = nullptr;
    char* fs = nullptr;
    if (mnt_split_optstr(options.c_str(), &user, &vfs, &fs, 0, 0) != 0) {
        return Err("cannot parse mount options \"" + options + "\"");
    }
    unsigned long flags = 0;
    int rc = vfs ? mnt_optstr_get_flags(vfs, &flags, mnt_get_builtin_optmap(MNT_LINUX_MAP)) : 0;
    out.flags = flags;
    out.data = fs ? fs : "";
    free(user);
    free(vfs);
    free(fs);
    if (rc != 0) return Err("cannot parse mount options \"" + options + "\"");
    return out;
}

}  // namespace peinit
