#include "peinit/tools/host_args.h"

#include <boost/program_options.hpp>

namespace peinit::args {

namespace po = boost::program_options;

Result<Parsed> ParseHost(std::span<char* const> argv, std::span<const OptionSpec> spec) {
    // Boost reads "--=x" as the operand "x"; the shared syntax has no option named "--".
    for (std::string_view arg : argv) {
        if (arg == "--") break;
        if (arg.starts_with("--=")) return Err(UnknownOption("--"));
    }
    po::options_description desc;
    auto add = [&](std::string_view name, Arity arity, char alias) {
        std::string key(name.substr(2));
        if (alias != 0) key += std::string(",") + alias;
        po::value_semantic* semantic = arity == Arity::kFlag
                                           ? po::value<std::string>()->zero_tokens()
                                           : po::value<std::string>();
        desc.add_options()(key.c_str(), semantic, "");
    };
    add("--help", Arity::kFlag, 'h');
    for (const auto& o : spec) add(o.name, o.arity, o.alias);

    // Boost's defaults minus abbreviated long options (allow_guessing) and grouped short ones
    // (allow_sticky), which the shared syntax does not have.
    namespace style = po::command_line_style;
    int st = style::allow_long | style::long_allow_adjacent | style::long_allow_next |
             style::allow_short | style::allow_dash_for_short | style::short_allow_adjacent |
             style::short_allow_next;
    std::vector<std::string> args(argv.begin(), argv.end());
    std::vector<Token> tokens;
    try {
        po::parsed_options parsed =
            po::command_line_parser(args).options(desc).style(st).run();
        for (auto& o : parsed.options) {
            if (o.string_key.empty()) {
                tokens.push_back({"", o.value.at(0)});
            } else {
                std::optional<std::string> value;
                if (!o.value.empty()) value = o.value.front();
                tokens.push_back({"--" + o.string_key, std::move(value)});
            }
        }
    } catch (const po::unknown_option& e) {
        std::string name = e.get_option_name();
        if (name.starts_with("--")) name = name.substr(0, name.find('='));
        return Err(UnknownOption(name));
    } catch (const po::invalid_command_line_syntax& e) {
        switch (e.kind()) {
            case po::invalid_syntax::missing_parameter:
            case po::invalid_syntax::empty_adjacent_parameter:
                return Err(MissingValue(e.get_option_name()));
            case po::invalid_syntax::extra_parameter:
                return Err(UnexpectedValue(e.get_option_name()));
            default:
                return Err(e.what());
        }
    } catch (const po::error& e) {
        return Err(e.what());
    }
    return Collect(std::move(tokens), spec);
}

}  // namespace peinit::args
