// Each binding file registers its exports with L2E_REGISTER(name, fn); addon.cpp calls them all in
// Init. This keeps binding files independent of one another.
#pragma once
#include <napi.h>

#include <functional>
#include <vector>

namespace l2e {

using RegisterFn = void (*)(Napi::Env, Napi::Object);
std::vector<RegisterFn>& registry();
struct Registrar {
  explicit Registrar(RegisterFn fn) { registry().push_back(fn); }
};

}  // namespace l2e

#define L2E_REGISTER(name, fn) static ::l2e::Registrar l2e_registrar_##name(fn)
