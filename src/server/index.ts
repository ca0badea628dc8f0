// The OpenAI-compatible HTTP server (`moet serve`); see docs/api.md.
export { startServer, DEFAULT_MAX_BODY_BYTES, type ServerOptions, type MoetServer } from './server.js';
