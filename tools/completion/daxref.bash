# bash completion for daxref and its tools (docs/packaging.md).
#
# One file for every command: meson installs it as "daxref" in
# bash-completion's completionsdir, with the other commands' names linked to
# it, so that bash-completion's loading by command name finds it for each.
# It needs nothing from the bash-completion package (plain compgen), so it
# can also be sourced by hand: `. tools/completion/daxref.bash`.
#
# Every option a tool's --help lists is offered here; test/completion_test.cc
# fails when one is missing.

# Offers the words of $1 that start with the current word.
_daxref_offer() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  COMPREPLY+=($(compgen -W "$1" -- "$cur"))
}

# Offers paths: files and directories (dirs: directories only).
_daxref_paths() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local IFS=$'\n'
  compopt -o filenames 2>/dev/null
  if [ "$1" = dirs ]; then
    COMPREPLY+=($(compgen -d -- "$cur"))
  else
    COMPREPLY+=($(compgen -f -- "$cur"))
  fi
}

# The common part: $1 options, $2 options that take a value (the word after
# them is not completed as a path or a command), $3 commands (empty for a
# tool without them), $4 what positional arguments are: files or dirs.
# Sets _daxref_command to the command given so far (if any).
_daxref_generic() {
  local opts=$1 valued=$2 commands=$3 paths=$4
  local cur=${COMP_WORDS[COMP_CWORD]} prev=
  [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
  COMPREPLY=()
  _daxref_command=
  local i w skip=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    if [ "$skip" -gt 0 ]; then
      skip=$((skip - 1))
      continue
    fi
    case " $valued " in *" $w "*)
      skip=1
      [ "$w" = -r ] || [ "$w" = --range ] && skip=2
      continue
      ;;
    esac
    if [ -n "$commands" ] && [ -z "$_daxref_command" ] && [ "${w#-}" = "$w" ]; then
      _daxref_command=$w
    fi
  done
  # The word being completed is an option's value: the caller decides.
  if [ "$skip" -gt 0 ] || case " $valued " in *" $prev "*) true ;; *) false ;; esac; then
    return 1
  fi
  if [ "${cur#-}" != "$cur" ]; then
    _daxref_offer "$opts"
  elif [ -n "$commands" ] && [ -z "$_daxref_command" ]; then
    _daxref_offer "$commands"
  else
    _daxref_paths "$paths"
  fi
  return 0
}

# daxref [OPTIONS] SOURCE MOUNTPOINT; -o takes a comma-separated list.
_daxref_mount_options="allow_other allow_root allow_suid allow_dev auto_unmount ro rw exec noexec
suid nosuid dev nodev async sync dirsync atime noatime diratime nodiratime relatime norelatime
strictatime nostrictatime lazytime nolazytime default_permissions debug defaults auto noauto user
users nouser owner group nofail _netdev fsname= subtype= source= max_read= log_level= log_file=
log_file_size= log_files= threads= attr_timeout= entry_timeout= lock_wait= poison_signal= dax_revoke_ms= remount"
_daxref() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  _daxref_generic "-f --foreground -d --debug -s --log-level -o -h --help -V --version" \
    "--log-level -o" "" dirs && return 0
  case $prev in
    --log-level) _daxref_offer "trace debug info warn error off" ;;
    -o)
      # Complete the last item of the list; keep what comes before it.
      local head= last=$cur
      if [ "${cur%,*}" != "$cur" ]; then
        head=${cur%,*},
        last=${cur##*,}
      fi
      local o
      for o in $(compgen -W "$_daxref_mount_options" -- "$last"); do
        COMPREPLY+=("$head$o")
      done
      compopt -o nospace 2>/dev/null
      ;;
  esac
}

_mkfs_daxref() {
  _daxref_generic "-s --size --sparse -L --label -f --force --json -q --quiet -h --help -V --version" \
    "-s --size -L --label" "" dirs && return 0
  case ${COMP_WORDS[COMP_CWORD - 1]} in
    -s | --size) _daxref_offer "64M 1G 16G" ;;
  esac
}

_fsck_daxref() {
  _daxref_generic "-n --no -p -a --preen -y --yes -f --force --json -h --help -V --version" \
    "" "" dirs
}

_daxref_info() {
  _daxref_generic "--json -h --help -V --version" "" "" files
}

_daxref_scrub() {
  _daxref_generic "--json -h --help -V --version" "" "" files
}

_daxref_map() {
  _daxref_generic "--json --blocks -r --range -c --count -h --help -V --version" \
    "-r --range" "extents fsmap owners" files
}

_daxref_poison() {
  _daxref_generic "--json --blocks --file --offset --length --sector --count --device-offset
    --device-length --inject -h --help -V --version" \
    "--file --offset --length --sector --count --device-offset --device-length" \
    "inject list clear resolve rescan from-device pre-remove" files && return 0
  case ${COMP_WORDS[COMP_CWORD - 1]} in
    --file) _daxref_paths files ;;
  esac
}

_daxref_reflink() {
  _daxref_generic "--json -h --help -V --version" "" "clone clone-range dedupe unshare" files
}

complete -F _daxref daxref
complete -F _mkfs_daxref mkfs.daxref
complete -F _fsck_daxref fsck.daxref fsck.fuse.daxref
complete -F _daxref_info daxref-info
complete -F _daxref_scrub daxref-scrub
complete -F _daxref_map daxref-map
complete -F _daxref_poison daxref-poison
complete -F _daxref_reflink daxref-reflink
