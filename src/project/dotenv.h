/*
 * .dev.vars and .env files (dotenv syntax), the local secrets `thaw dev`
 * gives a worker, as wrangler reads them:
 *
 *   # a comment
 *   API_KEY=abc123            unquoted: trimmed; " #" starts a comment
 *   export NAME=value         `export ` is allowed and ignored
 *   GREETING="hi\nthere"      double quotes: \n \r \t \" \\ escapes, may span lines
 *   RAW='no $escapes\n'       single quotes: literal, may span lines
 *   EMPTY=
 *
 * Names are [A-Za-z_][A-Za-z0-9_]*; a later line with the same name wins.
 * The file is the user's but is parsed as hostile: bounded (DOTENV_MAX_BYTES,
 * DOTENV_MAX_ENTRIES), NUL bytes refused, values valid UTF-8, every error
 * names its line.
 */
#ifndef THAW_PROJECT_DOTENV_H
#define THAW_PROJECT_DOTENV_H

#include <jansson.h>
#include <stddef.h>

#define DOTENV_MAX_BYTES (1u << 20)
#define DOTENV_MAX_ENTRIES 1000

/* text[0..len) as a JSON object of name -> string (returns new), or NULL with
 * err ("line N: ..."). */
json_t *dotenv_parse(const char *text, size_t len, char *err, size_t errlen);

/*
 * The local secrets of the project in dir, as wrangler finds them:
 * .dev.vars (.dev.vars.ENV first with env), else .env (.env.ENV first).
 * Returns new (which: the file's name), or NULL: err empty when there is no
 * such file, else why the file is refused.
 */
json_t *dotenv_load_dev(const char *dir, const char *env, char *which, size_t whichlen, char *err,
			size_t errlen);

#endif
