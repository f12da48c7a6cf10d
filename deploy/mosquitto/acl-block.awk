# Prints a Mosquitto ACL file (acl_file in mosquitto.conf(5)) without the block of one user, in
# the shape deploy/mosquitto/mosquitto.sh keeps it: the lines before the first `user` line except
# comments and blank lines (the caller writes its own header), then the block of every other
# user, one blank line between blocks. A block is a `user` line, the comment lines directly above
# it and every line up to the next block; blank lines are not kept (they are written again as
# separators). Used by mosquitto.sh (add-device, remove-device, start, reload) and by the compose
# stack's credentials job (deploy/docker/mosquitto/init.sh, busybox awk), so both keep the file
# in the same form.
#
#   awk -v user=NAME -f acl-block.awk FILE        (user empty: every block is kept)

{ sub(/\r$/, "") }

# A comment belongs to what follows it, unless a blank line comes first.
/^[ \t]*#/ {
  pending = pending $0 "\n"
  next
}

/^[ \t]*$/ {
  if (nb > 0) body[nb] = body[nb] pending
  pending = ""
  next
}

/^user[ \t]/ {
  n = $0
  sub(/^user[ \t]+/, "", n)
  sub(/[ \t]+$/, "", n)
  nb++
  name[nb] = n
  body[nb] = pending $0 "\n"
  pending = ""
  next
}

{
  if (nb == 0) header = header $0 "\n"
  else body[nb] = body[nb] pending $0 "\n"
  pending = ""
}

END {
  if (nb > 0) body[nb] = body[nb] pending
  printf "%s", header
  out = (header != "")
  for (i = 1; i <= nb; i++) {
    if (name[i] == user) continue
    if (out) printf "\n"
    printf "%s", body[i]
    out = 1
  }
}
