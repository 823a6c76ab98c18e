# vinom_unity_package: a UPM package (docs/clients.md, "Unity") in
# ${CMAKE_BINARY_DIR}/unity/com.vinom.client, made from the sources as they
# are, so no second copy of Vinom.cs lives in git: package.json (the project's
# one version), Runtime/ (Vinom.cs and its assembly definition), the sample
# MonoBehaviour under Samples~/, and this build's libvinom under
# Plugins/<platform>/<arch>/ (the one platform built here; a package for more
# merges the Plugins/ of each platform's build). Not part of `all`: built on
# request (`cmake --build BUILD --target vinom_unity_package`).
set(VINOM_CSHARP_DIR ${CMAKE_CURRENT_SOURCE_DIR}/../csharp)
set(VINOM_UNITY_DIR ${CMAKE_CURRENT_BINARY_DIR}/unity/com.vinom.client)
if(CMAKE_SYSTEM_NAME STREQUAL "Windows")
  set(VINOM_UNITY_PLATFORM Windows)
elseif(CMAKE_SYSTEM_NAME STREQUAL "Darwin")
  set(VINOM_UNITY_PLATFORM macOS)
else()
  set(VINOM_UNITY_PLATFORM ${CMAKE_SYSTEM_NAME})
endif()
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(VINOM_UNITY_ARCH x86_64)
else()
  set(VINOM_UNITY_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()
set(VINOM_UNITY_PLUGIN Plugins/${VINOM_UNITY_PLATFORM}/${VINOM_UNITY_ARCH})
# [DllImport("vinom")] looks for the unversioned name: libvinom.so, not its SONAME.
set(VINOM_UNITY_LIBRARY
    ${CMAKE_SHARED_LIBRARY_PREFIX}vinom${CMAKE_SHARED_LIBRARY_SUFFIX})
configure_file(cmake/unity/package.json.in ${CMAKE_CURRENT_BINARY_DIR}/unity/package.json
               @ONLY)
add_custom_target(vinom_unity_package
  COMMAND ${CMAKE_COMMAND} -E rm -rf ${VINOM_UNITY_DIR}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${VINOM_UNITY_DIR}/Runtime
          ${VINOM_UNITY_DIR}/${VINOM_UNITY_PLUGIN} ${VINOM_UNITY_DIR}/Samples~/TictactoeBot
  COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_CURRENT_BINARY_DIR}/unity/package.json
          ${VINOM_UNITY_DIR}/package.json
  COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_CURRENT_SOURCE_DIR}/cmake/unity/Vinom.Client.asmdef
          ${VINOM_CSHARP_DIR}/Vinom.cs ${VINOM_UNITY_DIR}/Runtime/
  COMMAND ${CMAKE_COMMAND} -E copy ${VINOM_CSHARP_DIR}/TictactoeBotBehaviour.cs
          ${VINOM_UNITY_DIR}/Samples~/TictactoeBot/
  COMMAND ${CMAKE_COMMAND} -E copy $<TARGET_FILE:vinom_shared>
          ${VINOM_UNITY_DIR}/${VINOM_UNITY_PLUGIN}/${VINOM_UNITY_LIBRARY}
  DEPENDS vinom_shared ${VINOM_CSHARP_DIR}/Vinom.cs ${VINOM_CSHARP_DIR}/TictactoeBotBehaviour.cs
          ${CMAKE_CURRENT_SOURCE_DIR}/cmake/unity/Vinom.Client.asmdef
  COMMENT "The Unity package in ${VINOM_UNITY_DIR}"
  VERBATIM)
