# Shared by the launch scripts (sourced, not run): one-line errors, shell quoting and --dry_run printing.
# A script sets SCRIPT (its name, for messages) and DRY_RUN (0 or 1) before calling these.

die() {  # One-line error on stderr, exit status 2.
  echo "${SCRIPT}: $*" >&2
  exit 2
}

quote() {  # One word as the shell reads it: unchanged when it is plain, else single-quoted.
  if [[ $1 =~ ^[A-Za-z0-9_./:=@,+%^-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

show() {  # Prints a command as one copy-pastable line: '+ word word ...'.
  local line="+" word
  for word in "$@"; do line+=" $(quote "$word")"; done
  echo "$line"
}

run() {  # Prints the command under --dry_run, else runs it.
  if [[ $DRY_RUN == 1 ]]; then show "$@"; else "$@"; fi
}

need() {  # need VALUE FLAG EXAMPLE: a missing required flag is a one-line error.
  [[ -n $1 ]] || die "missing $2 (e.g. $2=$3); see the usage at the top of launch/${SCRIPT}"
}

requirement_version() {  # The version pinned for package $1 in requirements.txt (jax==X -> X).
  local version
  version=$(sed -n "s/^$1==\([^ #]*\).*/\1/p" "$(dirname "${BASH_SOURCE[0]}")/../requirements.txt")
  [[ -n $version ]] || die "requirements.txt pins no '$1==VERSION' line; add one"
  echo "$version"
}
