/* sbx — umbrella header: include this to get the whole public API. */
#ifndef SBX_SBX_H
#define SBX_SBX_H

#include <sbx/export.h>
#include <sbx/error.h>
#include <sbx/log.h>
#include <sbx/policy.h>
#include <sbx/policyfile.h>
#include <sbx/pickle.h>
#include <sbx/channel.h>
#include <sbx/ipc.h>
#include <sbx/broker.h>
#include <sbx/target.h>
#include <sbx/version.h>

#endif
