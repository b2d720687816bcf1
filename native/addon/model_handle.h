// The native model as JS holds it: a shared state that async workers keep alive, so dispose() while
// work is in flight frees memory only when that work ends.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <mutex>

#include "core/model.h"
#include "core/train_state.h"

namespace l2e {

struct ModelState {
  std::mutex mu;  // one operation on a model at a time
  std::unique_ptr<Model> model;
  Activations acts;  // reused between calls of the same shape
  std::unique_ptr<TrainState> train;  // created by trainInit; destroyed before the model
  ~ModelState() {
    train.reset();
    if (model) model->free_activations(acts);
  }
};

// The state behind a NativeModel JS object; throws a JS error if it was disposed or is not a model.
std::shared_ptr<ModelState> model_state(const Napi::Value& v);

// Runs fn on the libuv pool under the model's lock; resolves the promise with make_result(env) or
// rejects with the native error's message.
Napi::Promise run_async(Napi::Env env, std::shared_ptr<ModelState> st, std::function<void(ModelState&)> fn,
                        std::function<Napi::Value(Napi::Env)> make_result);

}  // namespace l2e
