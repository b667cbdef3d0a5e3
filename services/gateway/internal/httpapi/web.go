package httpapi

import "github.com/gin-gonic/gin"

func (s *server) registerWeb(r *gin.Engine, v1 *gin.RouterGroup) {}
