/* placeholder: being written */
typedef int chorus_placeholder_t;
