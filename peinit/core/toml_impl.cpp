// toml++'s implementation (its parser and formatters), compiled once into peinit_core: the
// project links no libtomlplusplus.so (CMakeLists.txt, "toml++'s parser is compiled into the
// project"). Every other file includes the declarations only (TOML_HEADER_ONLY=0).
#define TOML_IMPLEMENTATION 1
#include <toml++/toml.h>
