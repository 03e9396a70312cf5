// Package auth authenticates callers of the HTTP API: API keys with scopes, each
// belonging to one workspace, read from the keys file (DISPATCHFLOW_API_KEYS_FILE,
// see LoadFile), and per-key rate limits (Limiter).
//
// A key is "dfk_<id>_<secret>": the secret is 32 random bytes (256 bits). With that
// much entropy nobody can guess a key or invert its hash, so the file stores a fast
// hash, SHA-256, and not a password hash (bcrypt, argon2): those slow down guessing
// of low-entropy passwords, which keys are not, and would cost every request
// milliseconds of CPU. The id in the key makes the lookup one map access, followed
// by one constant-time comparison of hashes (crypto/subtle), so response times say
// nothing about how close a guess was. The id is not secret: it appears in logs.
//
// A workspace may have several keys, which is how a key is rotated without
// downtime: add the new key to the file and deploy, move the clients to it, then
// remove the old key and deploy again. Its signing secrets rotate the same way:
// during a rotation both are listed and every postback carries both signatures.
//
// 'dispatchflow keys new' makes a key and prints the entry for the file;
// 'dispatchflow keys signing-secret' makes a signing secret.
package auth
