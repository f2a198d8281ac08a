# Warnings are errors on our own code; sanitizers are a preset away.
add_library(flowork_warnings INTERFACE)
target_compile_options(flowork_warnings INTERFACE
  -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
  # GCC 12 at -O2 reports std::string moved out of absl::StatusOr as maybe
  # uninitialized (a known false positive); Debug builds still check it.
  $<$<AND:$<CXX_COMPILER_ID:GNU>,$<NOT:$<CONFIG:Debug>>>:-Wno-maybe-uninitialized>)

if(FLOWORK_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# Boost.Asio/Beast: no deprecated interfaces; Boost.JSON is linked, not header-only.
add_compile_definitions(BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW)
