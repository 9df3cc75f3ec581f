#include "common/ticket.h"
