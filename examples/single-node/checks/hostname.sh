#!/bin/bash
# The node's name in the cluster comes from the hostname.
name=$(hostname)
[[ -n $name && $name != localhost ]] || { echo "the hostname is empty or 'localhost': set one with hostnamectl"; exit 1; }
echo "hostname is $name"
