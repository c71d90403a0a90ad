# SPDX-License-Identifier: MIT
# Writes the pkg-config files at install time (install(CODE) in
# CMakeLists.txt includes this), so that they name the prefix the files are
# really installed under: `cmake --install --prefix DIR` changes
# CMAKE_INSTALL_PREFIX here, after configure time. DESTDIR is a staging
# copy of that prefix and so does not appear in them.
#
# In: PC_SOURCE_DIR, PC_BINARY_DIR, PC_LIBDIR_REL, PC_INCLUDEDIR_REL (as
# GNUInstallDirs gives them: relative to the prefix, or absolute),
# PC_VERSION, PC_FILES (names, without .pc).

set(PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${PC_${dir}_REL}")
    set(PC_${dir} "${PC_${dir}_REL}")
  else()
    set(PC_${dir} "\${prefix}/${PC_${dir}_REL}")
  endif()
endforeach()
if(IS_ABSOLUTE "${PC_LIBDIR_REL}")
  set(pcdir "${PC_LIBDIR_REL}/pkgconfig")
else()
  set(pcdir "${CMAKE_INSTALL_PREFIX}/${PC_LIBDIR_REL}/pkgconfig")
endif()

foreach(name ${PC_FILES})
  configure_file("${PC_SOURCE_DIR}/pkgconfig/${name}.pc.in"
                 "${PC_BINARY_DIR}/pkgconfig/${name}.pc" @ONLY)
  file(INSTALL "${PC_BINARY_DIR}/pkgconfig/${name}.pc"
       DESTINATION "${pcdir}")
endforeach()
