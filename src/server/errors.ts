// Errors the server answers with, in OpenAI's error shape:
//   {"error": {"message", "type", "param", "code"}}
// `param` names the request field at fault (e.g. "input[2]"), null when the whole request is.

export type ErrorType = 'invalid_request_error' | 'authentication_error' | 'server_error' | 'overloaded_error';

export interface ErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string | null };
}

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: ErrorType = status === 401
      ? 'authentication_error'
      : status === 503
        ? 'overloaded_error'
        : status >= 500
          ? 'server_error'
          : 'invalid_request_error',
    /** Seconds for a Retry-After header (503s). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A bad field: 400 naming it. */
export function badField(param: string, message: string, code = 'invalid_value'): ApiError {
  return new ApiError(400, message, param, code);
}

/** A field over a limit: 413 naming it. */
export function overLimit(param: string | null, message: string): ApiError {
  return new ApiError(413, message, param, 'over_limit');
}

/** The model was disposed under the running server: nothing more can be embedded. */
export function modelDisposed(): ApiError {
  return new ApiError(
    503,
    'the model has been disposed (EmbeddingModel.dispose() was called while the server runs); restart the server',
    null,
    'model_disposed',
    'server_error',
  );
}
