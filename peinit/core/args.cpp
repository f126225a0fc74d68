#include "peinit/core/args.h"

#include <algorithm>
#include <iostream>

#ifndef PEINIT_VERSION
#error "PEINIT_VERSION must be defined by the build (CMake's project(VERSION))"
#endif

namespace peinit::args {

namespace {

constexpr std::string_view kHelp = "--help";

const OptionSpec* Find(std::span<const OptionSpec> spec, std::string_view name) {
    auto it = std::find_if(spec.begin(), spec.end(),
                           [&](const OptionSpec& o) { return o.name == name; });
    return it == spec.end() ? nullptr : &*it;
}

const OptionSpec* FindAlias(std::span<const OptionSpec> spec, char alias) {
    auto it = std::find_if(spec.begin(), spec.end(),
                           [&](const OptionSpec& o) { return o.alias != 0 && o.alias == alias; });
    return it == spec.end() ? nullptr : &*it;
}

}  // namespace

std::optional<std::string> Parsed::Value(std::string_view name) const {
    auto it = options_.find(name);
    if (it == options_.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
}

std::vector<std::string> Parsed::Values(std::string_view name) const {
    auto it = options_.find(name);
    return it == options_.end() ? std::vector<std::string>{} : it->second;
}

Result<Parsed> Parse(std::span<char* const> argv, std::span<const OptionSpec> spec) {
    std::vector<Token> tokens;
    for (std::size_t i = 0; i < argv.size(); ++i) {
        std::string_view arg = argv[i];
        if (arg == "--") {
            for (++i; i < argv.size(); ++i) tokens.push_back({"", std::string(argv[i])});
            break;
        }
        if (arg.size() < 2 || arg[0] != '-') {
            tokens.push_back({"", std::string(arg)});
            continue;
        }
        // The option's long name, and a value written into the same argument (--opt=V, -oV).
        std::string name;
        std::optional<std::string_view> attached;
        const OptionSpec* option = nullptr;
        if (arg.starts_with("--")) {
            auto eq = arg.find('=');
            name = arg.substr(0, eq);
            if (eq != std::string_view::npos) attached = arg.substr(eq + 1);
            option = Find(spec, name);
            if (option == nullptr && name != kHelp) return Err(UnknownOption(name));
        } else {
            option = FindAlias(spec, arg[1]);
            if (option == nullptr && arg[1] != 'h') return Err(UnknownOption(arg));
            name = option != nullptr ? option->name : kHelp;
            if (arg.size() > 2) attached = arg.substr(2);
        }
        if (option == nullptr || option->arity == Arity::kFlag) {
            if (attached) return Err(UnexpectedValue(name));
            tokens.push_back({name, std::nullopt});
        } else if (attached) {
            tokens.push_back({name, std::string(*attached)});
        } else {
            if (i + 1 >= argv.size()) return Err(MissingValue(name));
            tokens.push_back({name, std::string(argv[++i])});
        }
    }
    return Collect(std::move(tokens), spec);
}

Result<Parsed> Collect(std::vector<Token> tokens, std::span<const OptionSpec> spec) {
    Parsed out;
    for (auto& t : tokens) {
        if (t.name.empty()) {
            out.operands.push_back(std::move(*t.value));
            continue;
        }
        if (t.name == kHelp) {
            out.help = true;
            continue;
        }
        const OptionSpec* option = Find(spec, t.name);
        if (option == nullptr) return Err(UnknownOption(t.name));
        auto& values = out.options_[t.name];
        if (option->arity != Arity::kFlag && t.value.value_or("").empty()) {
            return Err(MissingValue(t.name));
        }
        if (option->arity == Arity::kValue && !values.empty()) return Err(Repeated(t.name));
        values.push_back(t.value.value_or(""));
    }
    return out;
}

FirstArgument ReadFirstArgument(std::string_view arg) {
    if (arg == "--help" || arg == "-h" || arg == "help") return {FirstArgument::kHelp, ""};
    if (arg == "--version") return {FirstArgument::kVersion, ""};
    if (arg.size() < 2 || arg[0] != '-') return {FirstArgument::kCommand, std::string(arg)};
    std::string_view name = arg.substr(0, arg.find('='));
    if (name == "--help" || name == "--version") return {FirstArgument::kError, UnexpectedValue(name)};
    return {FirstArgument::kError, UnknownOption(arg.starts_with("--") ? name : arg)};
}

std::string UnknownOption(std::string_view arg) { return "unknown option \"" + std::string(arg) + "\""; }
std::string MissingValue(std::string_view name) { return "option " + std::string(name) + " needs a value"; }
std::string UnexpectedValue(std::string_view name) {
    return "option " + std::string(name) + " takes no value";
}
std::string Repeated(std::string_view name) {
    return "option " + std::string(name) + " given more than once";
}
std::string Required(std::string_view name) { return "option " + std::string(name) + " is required"; }
std::string UnknownCommand(std::string_view command) {
    return "unknown command \"" + std::string(command) + "\"";
}
std::string UnexpectedOperand(std::string_view arg) {
    return "unexpected argument \"" + std::string(arg) + "\"";
}

int UsageError(std::string_view prog, std::string_view message, std::string_view usage) {
    std::cerr << prog << ": " << message << "\n\n" << usage;
    std::cerr.flush();
    return kExitUsage;
}

std::string VersionText(std::string_view tool) {
    return std::string(tool) + " (peinit) " + Version() + "\n";
}

std::string Version() { return PEINIT_VERSION; }

}  // namespace peinit::args
